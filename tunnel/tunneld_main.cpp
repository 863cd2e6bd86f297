// autopod-tunneld: the tunnel daemon on its own, so it maps only what it uses (libssh2 and
// OpenSSL, not libcurl's TLS/Kerberos/LDAP chain): its resident memory is most of its cost.
// Started by TunnelManager; its spec arrives on stdin, its readiness report leaves on fd 3.

#include "tunnel/tunnel.hpp"

int main() { return autopod::tunnel::run_tunnel_daemon(); }
