#pragma once
// Relays accepted client sockets over direct-tcpip channels of one libssh2 session, in the
// caller's poll loop (internal to tunnel/).

#include <libssh2.h>
#include <poll.h>

#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace autopod::tunnel {

class SshSession;

struct ForwardTarget {
  std::string host;  // as seen from the pod
  int port = 0;
};

struct ForwarderStats {
  std::uint64_t bytes_to_pod = 0;
  std::uint64_t bytes_from_pod = 0;
  std::uint64_t connections_total = 0;
  int connections_open = 0;
};

// Rules it follows, from libssh2 1.10 (see ../shared/reference/libssh2-tunnels.md):
// - one session, one thread; channel opens are serialised (the open state is per session);
// - after a send path returns EAGAIN with the session blocked outbound, the very same call is
//   repeated before any other libssh2 call (else 1.10 answers LIBSSH2_ERROR_BAD_USE);
// - half-close in both directions; a channel is read only while its client can take the data,
//   so the channel window gives back-pressure to the pod side.
class Forwarder {
 public:
  Forwarder(SshSession& session, std::uint32_t window_bytes);
  ~Forwarder();  // closes client sockets; channels die with the session
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Takes ownership of a connected, non-blocking client socket bound for `target`.
  void add_client(int fd, const ForwardTarget& target, const std::string& origin_host,
                  int origin_port);

  // Appends the descriptors to poll (session socket first); remembers their positions.
  void add_poll_fds(std::vector<pollfd>& fds);
  // Moves data after poll(). Returns whether it made progress (poll again without blocking),
  // or an error when the session is lost.
  core::Result<bool> service(const std::vector<pollfd>& fds);

  // Closes every client socket with a clean FIN (the session is gone or going).
  void close_all();
  ForwarderStats stats() const;

 private:
  struct Conn;
  enum class Op { none, open, write, send_eof, read, free };

  core::Result<bool> retry_pending();
  core::Result<bool> open_next();
  core::Result<bool> pump(Conn& c, bool client_readable);
  // Classifies a libssh2 failure: session lost (error), or only this channel (false).
  core::Status check(int rc, const char* what);
  bool blocked_outbound() const;
  void finish(std::list<Conn>::iterator it);

  SshSession& m_ssh;
  LIBSSH2_SESSION* m_session;
  int m_socket;
  std::uint32_t m_window;
  std::list<Conn> m_conns;
  std::deque<std::list<Conn>::iterator> m_to_open;
  Op m_pending = Op::none;
  Conn* m_pending_conn = nullptr;
  LIBSSH2_CHANNEL* m_pending_channel = nullptr;  // for Op::free
  std::size_t m_poll_base = 0;
  ForwarderStats m_stats;
  std::size_t m_rotation = 0;
};

}  // namespace autopod::tunnel
