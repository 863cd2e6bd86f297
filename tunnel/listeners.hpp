#pragma once
// The daemon's local listening sockets, one per forward (internal to tunnel/).

#include <vector>

#include "core/result.hpp"
#include "tunnel/tunnel.hpp"

namespace autopod::tunnel {

struct Listener {
  int fd = -1;  // non-blocking, close-on-exec; the caller closes it
  Forward forward;
};

// Listens on every forward's bind:local_port (backlog 128, like OpenSSH). invalid_argument
// for a bind address that is not IPv4 or a port in use (naming the process that holds it,
// where /proc tells); io otherwise. On failure nothing stays open.
core::Result<std::vector<Listener>> listen_on(const std::vector<Forward>& forwards);

}  // namespace autopod::tunnel
