#include "core/ssh_session.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/fs.hpp"
#include "core/log.hpp"

namespace autopod::core {


namespace {

std::string base64_decode(const std::string& in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (unsigned char c : in) {
    auto pos = chars.find(static_cast<char>(c));
    if (pos == std::string::npos) continue;  // newlines, '='
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

// An SSH wire string at `pos`, advancing it; empty on a short buffer.
std::string read_string(const std::string& buf, std::size_t& pos) {
  if (pos + 4 > buf.size()) return {};
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(buf[pos + i])); };
  std::uint32_t len = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
  pos += 4;
  if (pos + len > buf.size()) return {};
  std::string s = buf.substr(pos, len);
  pos += len;
  return s;
}

int knownhost_type(int hostkey_type) {
  switch (hostkey_type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
  }
}

std::string hex_to_base64_fingerprint(const char* raw) {
  static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(raw);
  for (int i = 0; i < 32; i += 3) {
    unsigned v = p[i] << 16;
    if (i + 1 < 32) v |= p[i + 1] << 8;
    if (i + 2 < 32) v |= p[i + 2];
    out += chars[(v >> 18) & 63];
    out += chars[(v >> 12) & 63];
    if (i + 1 < 32) out += chars[(v >> 6) & 63];
    if (i + 2 < 32) out += chars[v & 63];
  }
  return "SHA256:" + out;
}

}  // namespace

void ConnectCancel::cancel() {
  std::lock_guard lock(m_mutex);
  m_cancelled = true;
  if (m_fd >= 0) ::shutdown(m_fd, SHUT_RDWR);
}

bool ConnectCancel::adopt(int fd) {
  std::lock_guard lock(m_mutex);
  m_fd = m_cancelled ? -1 : fd;
  return !m_cancelled;
}

void ConnectCancel::release() {
  std::lock_guard lock(m_mutex);
  m_fd = -1;
}

Result<int> tcp_connect(const SshTarget& t, ConnectCancel* cancel) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string where = t.endpoint.host + ":" + std::to_string(t.endpoint.port);
  if (int rc = ::getaddrinfo(t.endpoint.host.c_str(), std::to_string(t.endpoint.port).c_str(), &hints, &found))
    return fail(ErrorCode::network, "cannot resolve " + t.endpoint.host + ": " + ::gai_strerror(rc),
                "check the pod's address with: autopod info");
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, ::freeaddrinfo);
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail(ErrorCode::io, std::string("socket: ") + std::strerror(errno));
  // From here each close is preceded by release(): a cancel must never hit a reused number.
  if (cancel && !cancel->adopt(fd)) {
    ::close(fd);
    return fail(ErrorCode::cancelled, "connect to " + where + " cancelled");
  }
  auto close_fd = [&] {
    if (cancel) cancel->release();
    ::close(fd);
  };
  int rc = ::connect(fd, found->ai_addr, found->ai_addrlen);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    rc = ::poll(&p, 1, static_cast<int>(t.timeout.count()));
    if (rc == 0) {
      close_fd();
      return fail(ErrorCode::network, "pod not reachable: no answer from " + where,
                  "is the pod running and its port 22 exposed? autopod info POD");
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    errno = err;
    rc = err ? -1 : 0;
  }
  if (rc != 0) {
    int err = errno;
    close_fd();
    return fail(ErrorCode::network, "pod not reachable at " + where + ": " + std::strerror(err),
                "is the pod running and its port 22 exposed? autopod info POD");
  }
  // Liveness is the kernel's: libssh2 1.10 keepalives never track replies (and leak them), so
  // TCP keepalive probes an idle link and TCP_USER_TIMEOUT bounds unacknowledged data.
  int on = 1, idle = 15, intvl = 5, cnt = 3;
  unsigned user_timeout_ms = 45000;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  return fd;
}

namespace {

// Checks the server's host key against known_hosts; pins it when the host is new.
Status check_host_key(LIBSSH2_SESSION* session, const SshTarget& t,
                            const std::string& fingerprint) {
  std::size_t len = 0;
  int type = 0;
  const char* key = libssh2_session_hostkey(session, &len, &type);
  if (!key) return fail(ErrorCode::protocol, "the server sent no host key");
  TRY(ensure_dir(t.known_hosts.parent_path()));
  // Serialise check-and-pin with other autopod processes (and their ssh runs) on this file.
  std::string lock_path = t.known_hosts.string() + ".lock";
  int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() {
      if (fd >= 0) ::close(fd);
    }
  } unlock{lock};

  LIBSSH2_KNOWNHOSTS* hosts = libssh2_knownhost_init(session);
  std::unique_ptr<LIBSSH2_KNOWNHOSTS, decltype(&libssh2_knownhost_free)> guard(
      hosts, libssh2_knownhost_free);
  libssh2_knownhost_readfile(hosts, t.known_hosts.c_str(), LIBSSH2_KNOWNHOST_FILE_OPENSSH);
  int mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | knownhost_type(type);
  libssh2_knownhost* entry = nullptr;
  int check = libssh2_knownhost_checkp(hosts, t.endpoint.host.c_str(), t.endpoint.port, key, len, mask, &entry);
  std::string name = t.endpoint.port == 22 ? t.endpoint.host : "[" + t.endpoint.host + "]:" + std::to_string(t.endpoint.port);
  if (check == LIBSSH2_KNOWNHOST_CHECK_MATCH) return {};
  if (check == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
    return fail(ErrorCode::auth,
                "host key changed for " + name + " (now " + fingerprint + "): refusing to connect",
                "someone may be intercepting, or the pod was recreated at the same address. If "
                "you trust it: ssh-keygen -R '" + name + "' -f " + t.known_hosts.string());
  // Not known yet: trust on first use, appended atomically to the file.
  libssh2_knownhost* added = nullptr;
  std::string comment = "autopod";
  if (libssh2_knownhost_addc(hosts, name.c_str(), nullptr, key, len, comment.c_str(),
                             comment.size(), mask, &added) != 0)
    return fail(ErrorCode::io, "cannot record the host key of " + name);
  char line[4096];
  std::size_t out = 0;
  if (libssh2_knownhost_writeline(hosts, added, line, sizeof line, &out,
                                  LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
    return fail(ErrorCode::io, "cannot format the host key of " + name);
  auto existing = read_file(t.known_hosts);
  std::string text = existing ? *existing : "";
  if (!text.empty() && text.back() != '\n') text += '\n';
  text.append(line, out);
  TRY(write_file_atomic(t.known_hosts, text, 0600));
  logger("ssh")->info("pinned host key of {} ({})", name, fingerprint);
  return {};
}

Status authenticate(LIBSSH2_SESSION* session, const SshTarget& t) {
  std::string where = t.endpoint.user + "@" + t.endpoint.host + ":" + std::to_string(t.endpoint.port);
  if (!t.endpoint.key.empty()) {
    int rc = libssh2_userauth_publickey_fromfile_ex(session, t.endpoint.user.c_str(),
                                                    static_cast<unsigned>(t.endpoint.user.size()), nullptr,
                                                    t.endpoint.key.c_str(), "");
    if (rc == 0) return {};
    return fail(ErrorCode::auth,
                "authentication refused for " + where + " with key " + t.endpoint.key.string() + " (" +
                    ssh_error(session) + ")",
                "the pod must have this key's .pub in authorized_keys (autopod hands it over as "
                "PUBLIC_KEY when it creates the pod)");
  }
  LIBSSH2_AGENT* agent = libssh2_agent_init(session);
  if (!agent) return fail(ErrorCode::auth, "cannot use ssh-agent");
  std::unique_ptr<LIBSSH2_AGENT, decltype(&libssh2_agent_free)> guard(agent, libssh2_agent_free);
  if (libssh2_agent_connect(agent) != 0 || libssh2_agent_list_identities(agent) != 0)
    return fail(ErrorCode::auth, "no key file and no ssh-agent to ask",
                "set ssh.key in config.yaml or start ssh-agent (SSH_AUTH_SOCK)");
  libssh2_agent_publickey* identity = nullptr;
  libssh2_agent_publickey* prev = nullptr;
  while (libssh2_agent_get_identity(agent, &identity, prev) == 0) {
    prev = identity;
    std::size_t pos = 0;
    std::string blob(reinterpret_cast<char*>(identity->blob), identity->blob_len);
    if (read_string(blob, pos) == "ssh-rsa") continue;  // SHA-1 only in 1.10: refused anyway
    if (libssh2_agent_userauth(agent, t.endpoint.user.c_str(), identity) == 0) {
      libssh2_agent_disconnect(agent);
      return {};
    }
  }
  libssh2_agent_disconnect(agent);
  return fail(ErrorCode::auth, "authentication refused for " + where + " with every ed25519/ECDSA "
                               "key in ssh-agent",
              "add the pod's key to the agent (ssh-add), or set ssh.key in config.yaml");
}

}  // namespace

std::string ssh_error(LIBSSH2_SESSION* session) {
  char* msg = nullptr;
  int len = 0;
  int code = libssh2_session_last_error(session, &msg, &len, 0);
  return std::string(msg ? msg : "unknown") + " [" + std::to_string(code) + "]";
}

Result<std::string> private_key_type(const std::filesystem::path& key) {
  auto text = read_file(key);
  if (!text) {
    if (text.error().code == ErrorCode::not_found)
      return fail(ErrorCode::not_found, "ssh key " + key.string() + " does not exist",
                  "set ssh.key in config.yaml to an existing ed25519 key");
    return fail(text.error());
  }
  if (text->find("BEGIN RSA PRIVATE KEY") != std::string::npos) return std::string("ssh-rsa");
  if (text->find("BEGIN EC PRIVATE KEY") != std::string::npos) return std::string("ecdsa");
  const std::string begin = "-----BEGIN OPENSSH PRIVATE KEY-----";
  auto b = text->find(begin);
  if (b == std::string::npos) return std::string("unknown");
  auto e = text->find("-----END", b);
  std::string blob = base64_decode(text->substr(b + begin.size(), e - b - begin.size()));
  const std::string magic("openssh-key-v1\0", 15);
  if (blob.compare(0, magic.size(), magic) != 0) return std::string("unknown");
  std::size_t pos = magic.size();
  read_string(blob, pos);  // cipher
  read_string(blob, pos);  // kdf
  read_string(blob, pos);  // kdf options
  pos += 4;                // number of keys
  std::string pub = read_string(blob, pos);
  std::size_t p = 0;
  std::string type = read_string(pub, p);
  return type.empty() ? std::string("unknown") : type;
}

Result<std::unique_ptr<SshSession>> SshSession::connect(const SshTarget& target,
                                                              ConnectCancel* cancel) {
  static std::once_flag once;
  std::call_once(once, [] { libssh2_init(0); });
  if (!target.endpoint.key.empty()) {
    // Refuse an RSA key before connecting: libssh2's own error (-18) reads like a wrong key.
    TRY_ASSIGN(auto type, private_key_type(target.endpoint.key));
    if (type == "ssh-rsa")
      return fail(ErrorCode::invalid_argument,
                  "the key " + target.endpoint.key.string() + " is RSA, which this libssh2 (1.10) can "
                  "only sign with SHA-1; current sshd refuses that",
                  "use an ed25519 key: ssh-keygen -t ed25519 -f ~/.autopod/id_ed25519 (or "
                  "remove ssh.key from config.yaml and autopod makes one)");
  }
  std::unique_ptr<SshSession> s(new SshSession());
  TRY_ASSIGN(s->m_socket, tcp_connect(target, cancel));
  s->m_cancel = cancel;
  s->m_session = libssh2_session_init_ex(nullptr, nullptr, nullptr, s.get());
  if (!s->m_session) return fail(ErrorCode::internal, "libssh2_session_init failed");
  libssh2_session_callback_set(s->m_session, LIBSSH2_CALLBACK_RECV,
                               reinterpret_cast<void*>(&SshSession::budgeted_recv));
  libssh2_session_set_blocking(s->m_session, 1);
  libssh2_session_set_timeout(s->m_session, static_cast<long>(target.timeout.count()));
  // 1.10 prefers ECDSA host keys; OpenSSH prefers ed25519. Same order as ssh, same pins.
  libssh2_session_method_pref(s->m_session, LIBSSH2_METHOD_HOSTKEY,
                              "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                              "ecdsa-sha2-nistp521,ssh-rsa");
  std::string where = target.endpoint.host + ":" + std::to_string(target.endpoint.port);
  if (libssh2_session_handshake(s->m_session, s->m_socket) != 0)
    return fail(ErrorCode::network, "ssh handshake with " + where + " failed: " +
                                        ssh_error(s->m_session),
                "is it an ssh server? an RSA-only host key needs the pod's sshd to offer "
                "ed25519 or ECDSA");
  const char* hash = libssh2_hostkey_hash(s->m_session, LIBSSH2_HOSTKEY_HASH_SHA256);
  if (hash) s->m_fingerprint = hex_to_base64_fingerprint(hash);
  TRY(check_host_key(s->m_session, target, s->m_fingerprint));
  TRY(authenticate(s->m_session, target));
  if (cancel) cancel->release();  // the socket is the caller's now
  s->m_cancel = nullptr;
  return s;
}

ssize_t SshSession::budgeted_recv(libssh2_socket_t fd, void* buffer, size_t length, int flags,
                                  void** abstract) {
  auto* self = static_cast<SshSession*>(*abstract);
  if (self->m_recv_budget == 0) return -EAGAIN;  // as if the socket were empty, for now
  ssize_t n = ::recv(fd, buffer, std::min(length, self->m_recv_budget), flags);
  if (n < 0) return -errno;  // libssh2's own recv reports errors as negative errno
  if (self->m_recv_budget != SIZE_MAX) self->m_recv_budget -= static_cast<std::size_t>(n);
  return n;
}

SshSession::~SshSession() {
  if (m_session) {
    libssh2_session_set_blocking(m_session, 0);  // never hang on a dead link while closing
    m_recv_budget = SIZE_MAX;                    // our recv callback must not fake an EAGAIN
    libssh2_session_disconnect(m_session, "autopod tunnel closing");
    // libssh2 1.10 closes each channel still open before freeing it (a channel being opened
    // counts), and in non-blocking mode gives up at the first EAGAIN, leaving the whole session
    // allocated (about 60 KiB, each time a session with connections is dropped). With the
    // socket shut down, every send and receive fails at once instead, and it frees everything.
    if (m_socket >= 0) ::shutdown(m_socket, SHUT_RDWR);
    libssh2_session_free(m_session);
  }
  if (m_cancel) m_cancel->release();
  if (m_socket >= 0) ::close(m_socket);
}

}  // namespace autopod::core
