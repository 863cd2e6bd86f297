#pragma once
// Relays accepted client sockets over direct-tcpip channels of one libssh2 session, in the
// caller's poll loop (internal to tunnel/).

#include <libssh2.h>
#include <poll.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace autopod::core {
class SshSession;
}

namespace autopod::tunnel {

struct ForwardTarget {
  std::string host;  // as seen from the pod
  int port = 0;
};

using SteadyClock = std::chrono::steady_clock;

struct ForwarderStats {
  std::uint64_t bytes_to_pod = 0;
  std::uint64_t bytes_from_pod = 0;
  int connections_open = 0;  // client connections, including those waiting for their channel
  int opens_pending = 0;     // client connections waiting for their channel
};

// Rules it follows, from libssh2 1.10 (see ../shared/reference/libssh2-tunnels.md):
// - one session, one thread; channel opens are serialised (the open state is per session), so
//   the caller hands it a client only when can_open(), and spreads opens over sessions;
// - an open whose client's deadline passes closes that client, but libssh2's open is never
//   abandoned midway (it would hand the next open this one's answer): it runs to its end in the
//   background meanwhile and the session takes no new open (draining()); a late confirmation
//   closes the channel at once. If libssh2 itself gives up (60 s, LIBSSH2_READ_TIMEOUT), the
//   server may still hold that channel, so the session stays draining for good;
// - a failed open (refused, no answer) concerns one client only: the session is lost only
//   when its transport fails;
// - after a send path returns EAGAIN with the session blocked outbound, the very same call is
//   repeated before any other libssh2 call (else 1.10 answers LIBSSH2_ERROR_BAD_USE);
// - half-close in both directions; a channel is read only while its client can take the data,
//   so the channel window gives back-pressure to the pod side.
class Forwarder {
 public:
  Forwarder(core::SshSession& session, std::uint32_t window_bytes);
  ~Forwarder();  // closes client sockets; channels die with the session
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Takes ownership of a connected, non-blocking client socket bound for `target`; its channel
  // open is given up (the client closed) at `open_deadline`.
  void add_client(int fd, const ForwardTarget& target, const std::string& origin_host,
                  int origin_port, SteadyClock::time_point open_deadline);
  // No channel open in flight or queued, and not draining: add_client() opens at once.
  bool can_open() const { return m_to_open.empty() && !m_draining; }
  // An open outlived its client: no new opens until libssh2 finishes it (for good after a
  // libssh2 timeout).
  bool draining() const { return m_draining; }
  // Since when it cannot take a new open: its open in flight started then, or (draining with
  // none in flight) since long ago; now when its client's open has yet to start; nullopt when
  // can_open().
  std::optional<SteadyClock::time_point> busy_since() const;
  // Nothing open or opening: the session may be closed without cutting anyone.
  bool idle() const { return m_conns.empty(); }
  // Closes the clients whose open is past its deadline (logged).
  void expire_opens(SteadyClock::time_point now);
  // When expire_opens() or service() has something to do without any descriptor being ready:
  // the earliest deadline of a client still waiting for its channel, or the end of libssh2's
  // own wait for an abandoned open (so that it is noticed even on an idle session).
  std::optional<SteadyClock::time_point> next_open_deadline() const;

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
  core::Result<bool> opened(LIBSSH2_CHANNEL* ch);
  core::Result<bool> pump(Conn& c, bool client_readable);
  // Classifies a libssh2 failure: session lost (error), or only this channel (false).
  core::Status check(int rc, const char* what);
  bool blocked_outbound() const;
  void finish(std::list<Conn>::iterator it);

  core::SshSession& m_ssh;
  LIBSSH2_SESSION* m_session;
  int m_socket;
  std::uint32_t m_window;
  std::list<Conn> m_conns;
  std::deque<std::list<Conn>::iterator> m_to_open;
  Op m_pending = Op::none;
  bool m_open_started = false;  // libssh2 holds the front of m_to_open's open state
  SteadyClock::time_point m_open_started_at;
  bool m_draining = false;
  bool m_gave_up = false;  // libssh2 timed an open out: the server may hold a channel we lost
  Conn* m_pending_conn = nullptr;
  LIBSSH2_CHANNEL* m_pending_channel = nullptr;  // for Op::free
  std::size_t m_poll_base = 0;
  ForwarderStats m_stats;
  std::size_t m_rotation = 0;
};

}  // namespace autopod::tunnel
