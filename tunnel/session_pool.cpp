#include "tunnel/session_pool.hpp"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "core/log.hpp"

namespace autopod::tunnel {

namespace {

void close_client(int fd) {
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

long long whole_seconds(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

// A session being connected by a thread of its own; the thread wakes the poll loop (the
// pool's eventfd) when `result` is set.
struct SessionPool::Connecting {
  core::ConnectCancel cancel;
  std::mutex mutex;
  std::optional<core::Result<std::unique_ptr<core::SshSession>>> result;
  std::thread thread;
};

SessionPool::SessionPool(core::SshTarget target,
                         std::uint32_t window_bytes,
                         std::chrono::milliseconds open_timeout)
    : m_target(std::move(target)),
      m_window(window_bytes),
      m_open_timeout(open_timeout),
      m_wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

SessionPool::~SessionPool() {
  if (m_connecting) {
    m_connecting->cancel.cancel();
    m_connecting->thread.join();
  }
  for (auto& w : m_waiting)
    close_client(w.fd);
  m_lanes.clear();  // each forwarder closes its clients, then its session goes
  if (m_wake >= 0)
    ::close(m_wake);
}

SessionPool::Lane SessionPool::make_lane(std::unique_ptr<core::SshSession> session) {
  libssh2_session_set_blocking(session->get(), 0);
  Lane lane;
  lane.forwarder = std::make_unique<Forwarder>(*session, m_window);
  lane.session = std::move(session);
  lane.busy_at = SteadyClock::now();
  return lane;
}

core::Status SessionPool::connect() {
  TRY_ASSIGN(auto session, core::SshSession::connect(m_target));
  core::logger("tunnel")->info("connected to {}:{} (host key {})", m_target.endpoint.host, m_target.endpoint.port,
                               session->fingerprint());
  m_lanes.push_back(make_lane(std::move(session)));
  return {};
}

void SessionPool::add_client(int fd,
                             const ForwardTarget& target,
                             const std::string& origin_host,
                             int origin_port) {
  ++m_connections_total;
  m_waiting.push_back({fd, target, origin_host, origin_port, SteadyClock::now() + m_open_timeout});
  dispatch();
}

void SessionPool::add_poll_fds(std::vector<pollfd>& fds) {
  m_wake_index = fds.size();
  fds.push_back({m_connecting ? m_wake : -1, POLLIN, 0});
  for (auto& l : m_lanes) {
    l.forwarder->add_poll_fds(fds);
    l.polled = true;
  }
}

void SessionPool::dispatch() {
  while (!m_waiting.empty()) {
    auto free = std::find_if(m_lanes.begin(), m_lanes.end(),
                             [](const Lane& l) { return l.forwarder->can_open(); });
    if (free == m_lanes.end())
      return;
    Waiting w = std::move(m_waiting.front());
    m_waiting.pop_front();
    free->forwarder->add_client(w.fd, w.target, w.origin_host, w.origin_port, w.deadline);
  }
}

void SessionPool::expire_waiting(SteadyClock::time_point now) {
  for (auto it = m_waiting.begin(); it != m_waiting.end();) {
    if (now < it->deadline) {
      ++it;
      continue;
    }
    core::logger("tunnel")->warn(
        "no ssh session could open {}:{} for client {}:{} within {}s (all {} busy opening); "
        "closed that client connection",
        it->target.host, it->target.port, it->origin_host, it->origin_port,
        whole_seconds(m_open_timeout), m_lanes.size());
    close_client(it->fd);
    it = m_waiting.erase(it);
  }
}

void SessionPool::start_connect() {
  m_connecting = std::make_unique<Connecting>();
  Connecting* c = m_connecting.get();
  // The thread only touches *c (joined before it goes) and the eventfd (closed after that).
  c->thread = std::thread([c, target = m_target, wake = m_wake] {
    auto r = core::SshSession::connect(target, &c->cancel);
    {
      std::lock_guard lock(c->mutex);
      c->result = std::move(r);
    }
    std::uint64_t one = 1;
    (void)!::write(wake, &one, sizeof one);
  });
}

void SessionPool::adopt_connect() {
  std::uint64_t count = 0;
  (void)!::read(m_wake, &count, sizeof count);
  if (!m_connecting)
    return;
  std::optional<core::Result<std::unique_ptr<core::SshSession>>> result;
  {
    std::lock_guard lock(m_connecting->mutex);
    result = std::move(m_connecting->result);
  }
  if (!result)
    return;
  m_connecting->thread.join();
  m_connecting.reset();
  auto log = core::logger("tunnel");
  if (!*result) {
    m_connect_after = SteadyClock::now() + k_connect_retry;
    log->warn(
        "cannot connect another ssh session for channel opens: {}; opens wait for the "
        "{} connected",
        result->error().message, m_lanes.size());
    return;
  }
  m_lanes.push_back(make_lane(std::move(*result).value()));
  log->info("ssh session {} connected: opens go on while the others wait for answers",
            m_lanes.size());
}

void SessionPool::close_lane(std::size_t i) {
  auto f = m_lanes[i].forwarder->stats();
  m_closed.bytes_to_pod += f.bytes_to_pod;
  m_closed.bytes_from_pod += f.bytes_from_pod;
  m_lanes[i].forwarder->close_all();
  m_lanes.erase(m_lanes.begin() + static_cast<long>(i));
}

void SessionPool::close_unneeded(SteadyClock::time_point now) {
  for (std::size_t i = m_lanes.size(); i-- > 0 && m_lanes.size() > 1;) {
    Lane& l = m_lanes[i];
    // Only an abandoned open left (or a libssh2-timed-out one, for good): closing the session
    // is the one way to end it on the pod, and frees the slot.
    bool orphaned = l.forwarder->draining() && l.forwarder->stats().connections_open == 0;
    bool unused = i > 0 && l.forwarder->idle() && now - l.busy_at >= k_idle_close;
    if (!orphaned && !unused)
      continue;
    core::logger("tunnel")->info("closing ssh session {} of {} ({})", i + 1, m_lanes.size(),
                                 orphaned ? "its only open got no answer in time" : "unused");
    close_lane(i);
  }
}

std::optional<SteadyClock::time_point> SessionPool::more_sessions_at() const {
  if (m_connecting || m_lanes.size() >= k_max_sessions)
    return std::nullopt;
  SteadyClock::time_point newest{};
  for (const auto& l : m_lanes) {
    auto since = l.forwarder->busy_since();
    if (!since)
      return std::nullopt;  // a session is free
    newest = std::max(newest, *since);
  }
  return std::max(newest + k_slow_open, m_connect_after);
}

void SessionPool::plan_wakeup(SteadyClock::time_point now) {
  m_wakeup.reset();
  auto earliest = [&](SteadyClock::time_point t) {
    if (!m_wakeup || t < *m_wakeup)
      m_wakeup = t;
  };
  for (const auto& w : m_waiting)
    earliest(w.deadline);
  for (std::size_t i = 0; i < m_lanes.size(); ++i) {
    if (auto d = m_lanes[i].forwarder->next_open_deadline())
      earliest(*d);
    if (i > 0 && m_lanes[i].forwarder->idle())
      earliest(m_lanes[i].busy_at + k_idle_close);
  }
  if (auto at = more_sessions_at(); at && *at > now)
    earliest(*at);
}

core::Result<bool> SessionPool::service(const std::vector<pollfd>& fds) {
  if (fds.at(m_wake_index).revents & POLLIN)
    adopt_connect();
  auto now = SteadyClock::now();
  expire_waiting(now);
  for (auto& l : m_lanes)
    l.forwarder->expire_opens(now);
  dispatch();
  bool progress = false;
  std::optional<core::Error> lost;
  for (std::size_t i = 0; i < m_lanes.size();) {
    Lane& l = m_lanes[i];
    if (!l.polled) {  // adopted in this pass: its descriptors are polled from the next one
      progress = true;
      ++i;
      continue;
    }
    auto r = l.forwarder->service(fds);
    if (r) {
      progress = progress || *r;
      if (!l.forwarder->idle())
        l.busy_at = now;
      ++i;
      continue;
    }
    if (m_lanes.size() > 1)  // the last one is the caller's to report
      core::logger("tunnel")->warn("{} (ssh session {} of {}; the others go on)", r.error().message,
                                   i + 1, m_lanes.size());
    close_lane(i);
    lost = r.error();
  }
  if (m_lanes.empty()) {
    for (auto& w : m_waiting)
      close_client(w.fd);
    m_waiting.clear();
    if (m_connecting) {
      m_connecting->cancel.cancel();
      m_connecting->thread.join();
      m_connecting.reset();
    }
    m_wakeup.reset();
    if (!lost)
      return core::fail(core::ErrorCode::network, "no ssh session to the pod");
    return core::fail(*lost);
  }
  dispatch();  // sessions whose open ended in this pass
  close_unneeded(now);
  if (auto at = more_sessions_at(); at && now >= *at)
    start_connect();
  plan_wakeup(now);
  return progress;
}

PoolStats SessionPool::stats() const {
  PoolStats s = m_closed;
  s.connections_total = m_connections_total;
  s.connections_open = s.opens_pending = static_cast<int>(m_waiting.size());
  for (const auto& l : m_lanes) {
    auto f = l.forwarder->stats();
    s.bytes_to_pod += f.bytes_to_pod;
    s.bytes_from_pod += f.bytes_from_pod;
    s.connections_open += f.connections_open;
    s.opens_pending += f.opens_pending;
  }
  s.sessions = static_cast<int>(m_lanes.size());
  return s;
}

}  // namespace autopod::tunnel
