#pragma once
// The SSH sessions of one tunnel and the client connections waiting for a channel
// (internal to tunnel/).

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/result.hpp"
#include "tunnel/forwarder.hpp"
#include "core/ssh_session.hpp"

namespace autopod::tunnel {

struct PoolStats {
  std::uint64_t bytes_to_pod = 0;
  std::uint64_t bytes_from_pod = 0;
  std::uint64_t connections_total = 0;
  int connections_open = 0;
  int opens_pending = 0;  // clients waiting for their channel (queued or being opened)
  int sessions = 0;
};

// libssh2 1.10 lets a session have one channel open in flight (the open state is the
// session's), and a pod may take a minute to answer one (a target that drops SYNs: until
// sshd's connect gives up). So that a slow open never holds back the others, the pool spreads
// opens over up to k_max_sessions sessions to the same pod: a client gets the first session
// with no open in flight; when every session has had one in flight for k_slow_open, one more
// is connected in the background (a thread; the poll loop never waits for it). Opens that are
// merely quick in a row (a burst) stay on one session, as before. Channels stay on the session
// that opened them; extra sessions close after k_idle_close unused. Each client waits for its
// channel at most `open_timeout` (queued or in flight), then is closed and logged; no open
// ever ends a session.
class SessionPool {
 public:
  static constexpr std::size_t k_max_sessions = 4;
  static constexpr std::chrono::milliseconds k_slow_open{250};
  static constexpr std::chrono::seconds k_idle_close{60};
  static constexpr std::chrono::seconds k_connect_retry{5};  // after a failed extra session

  SessionPool(core::SshTarget target, std::uint32_t window_bytes, std::chrono::milliseconds open_timeout);
  ~SessionPool();  // closes every client; cancels and joins a background connect
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  // Connects the first session, blocking, with core::SshSession::connect's errors. For the start
  // and for each reconnect, when connected() is false.
  core::Status connect();
  bool connected() const { return !m_lanes.empty(); }

  // Takes ownership of a connected, non-blocking client socket bound for `target`.
  void add_client(int fd,
                  const ForwardTarget& target,
                  const std::string& origin_host,
                  int origin_port);
  void add_poll_fds(std::vector<pollfd>& fds);
  // Adopts a finished background connect, closes clients past their open deadline, hands
  // waiting clients to free sessions, moves data, closes idle extra sessions. Returns whether
  // it made progress (poll again without blocking), or the error that lost the last session
  // (every client is closed by then). A lost session that is not the last is logged only.
  core::Result<bool> service(const std::vector<pollfd>& fds);
  // When service() must run even if no descriptor is ready (a deadline); nullopt: never.
  std::optional<SteadyClock::time_point> next_wakeup() const { return m_wakeup; }
  PoolStats stats() const;

 private:
  struct Lane {
    std::unique_ptr<core::SshSession> session;
    std::unique_ptr<Forwarder> forwarder;  // refers to session: declared after it
    SteadyClock::time_point busy_at;       // last time it had a connection
    bool polled = false;                   // its descriptors are in this pass's poll set
  };
  struct Waiting {
    int fd = -1;
    ForwardTarget target;
    std::string origin_host;
    int origin_port = 0;
    SteadyClock::time_point deadline;
  };
  struct Connecting;

  Lane make_lane(std::unique_ptr<core::SshSession> session);
  void adopt_connect();
  void start_connect();
  void dispatch();
  void expire_waiting(SteadyClock::time_point now);
  void close_lane(std::size_t i);
  void close_unneeded(SteadyClock::time_point now);
  // When another session should be connected (every one busy opening since k_slow_open), if
  // one may be; nullopt when none is needed or allowed.
  std::optional<SteadyClock::time_point> more_sessions_at() const;
  void plan_wakeup(SteadyClock::time_point now);

  core::SshTarget m_target;
  std::uint32_t m_window;
  std::chrono::milliseconds m_open_timeout;
  std::vector<Lane> m_lanes;
  std::deque<Waiting> m_waiting;
  std::unique_ptr<Connecting> m_connecting;
  int m_wake = -1;  // eventfd: a background connect finished
  std::size_t m_wake_index = 0;
  SteadyClock::time_point m_connect_after{};
  std::optional<SteadyClock::time_point> m_wakeup;
  PoolStats m_closed;  // bytes moved by sessions already closed
  std::uint64_t m_connections_total = 0;
};

}  // namespace autopod::tunnel
