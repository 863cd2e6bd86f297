// Forwarder's channel opens: one in flight per session (libssh2 1.10 keeps the open state in
// the session), each bounded by its client's deadline, none ever ending the session.

#include <sys/socket.h>
#include <unistd.h>

#include "core/log.hpp"
#include "tunnel/forwarder.hpp"
#include "tunnel/forwarder_conn.hpp"
#include "core/ssh_session.hpp"

namespace autopod::tunnel {

namespace {
constexpr std::uint32_t k_packet = 32 * 1024;
// libssh2 1.10 waits this long for an open's answer (LIBSSH2_READ_TIMEOUT, 60 s, counted in
// whole seconds from its first EAGAIN), plus a margin for that rounding.
constexpr std::chrono::seconds k_libssh2_open_wait{62};
}  // namespace

std::optional<SteadyClock::time_point> Forwarder::next_open_deadline() const {
  std::optional<SteadyClock::time_point> next;
  for (auto it : m_to_open)
    if (it->fd >= 0 && (!next || it->open_deadline < *next)) next = it->open_deadline;
  if (m_open_started && m_to_open.front()->fd < 0) {
    auto libssh2_gives_up = m_open_started_at + k_libssh2_open_wait;
    if (!next || libssh2_gives_up < *next) next = libssh2_gives_up;
  }
  return next;
}

std::optional<SteadyClock::time_point> Forwarder::busy_since() const {
  if (can_open()) return std::nullopt;
  if (m_open_started) return m_open_started_at;
  if (m_to_open.empty()) return SteadyClock::time_point{};  // draining for good
  return SteadyClock::now();
}

void Forwarder::expire_opens(SteadyClock::time_point now) {
  for (auto q = m_to_open.begin(); q != m_to_open.end();) {
    Conn& c = **q;
    if (c.fd < 0 || now < c.open_deadline) {
      ++q;
      continue;
    }
    core::logger("tunnel")->warn(
        "no answer from the pod opening {}:{} for client {}:{}; closed that client connection "
        "(other connections go on)", c.target.host, c.target.port, c.origin_host, c.origin_port);
    ::shutdown(c.fd, SHUT_RDWR);
    ::close(c.fd);
    c.fd = -1;
    if (q == m_to_open.begin() && m_open_started) {
      m_draining = true;  // libssh2 still holds this open: it ends in open_next(), not here
      ++q;
      continue;
    }
    auto it = *q;
    q = m_to_open.erase(q);
    m_conns.erase(it);
  }
}

core::Result<bool> Forwarder::open_next() {
  if (m_to_open.empty()) return true;
  // Never abandon an open midway: libssh2 keeps its state in the session and would hand the
  // next open this one's channel.
  Conn& c = *m_to_open.front();
  // direct-tcpip with our own window: libssh2_channel_direct_tcpip_ex() fixes it at 2 MiB,
  // which bounds a stream from the pod to 2 MiB per round trip.
  std::string msg;
  auto put_u32 = [&](std::uint32_t n) {
    char b[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                 static_cast<char>(n)};
    msg.append(b, 4);
  };
  auto put_string = [&](const std::string& s) {
    put_u32(static_cast<std::uint32_t>(s.size()));
    msg.append(s);
  };
  put_string(c.target.host);
  put_u32(static_cast<std::uint32_t>(c.target.port));
  put_string(c.origin_host);
  put_u32(static_cast<std::uint32_t>(c.origin_port));
  LIBSSH2_CHANNEL* ch = libssh2_channel_open_ex(m_session, "direct-tcpip", 12, m_window, k_packet,
                                                msg.data(), static_cast<unsigned>(msg.size()));
  if (ch) return opened(ch);
  int rc = libssh2_session_last_errno(m_session);
  if (rc == LIBSSH2_ERROR_EAGAIN) {
    if (!m_open_started) m_open_started_at = SteadyClock::now();
    m_open_started = true;
    m_pending = blocked_outbound() ? Op::open : Op::none;
    m_pending_conn = &c;
    // Waiting for the server's answer: other channels may go on meanwhile, but no second open.
    return false;
  }
  if (m_pending == Op::open) m_pending = Op::none;
  m_open_started = false;
  m_to_open.pop_front();
  c.dead = true;  // the client sees a close
  m_draining = m_gave_up;
  auto log = core::logger("tunnel");
  if (rc == LIBSSH2_ERROR_TIMEOUT) {
    // libssh2 waited LIBSSH2_READ_TIMEOUT (60 s) and forgot the channel; the server may still
    // confirm it later, and only closing the session frees it there.
    m_gave_up = m_draining = true;
    log->warn("libssh2 gave up waiting for the pod to open {}:{}; this ssh session takes no "
              "new connections and closes once idle", c.target.host, c.target.port);
    return true;
  }
  TRY(check(rc, "channel open"));
  log->info("pod refused forward to {}:{}: {}", c.target.host, c.target.port,
            core::ssh_error(m_session));  // e.g. nothing listens on that port in the pod
  return true;
}

core::Result<bool> Forwarder::opened(LIBSSH2_CHANNEL* ch) {
  Conn& c = *m_to_open.front();
  c.ch = ch;
  m_to_open.pop_front();
  if (m_pending == Op::open) m_pending = Op::none;
  m_open_started = false;
  m_draining = m_gave_up;
  if (c.fd < 0) {
    // Its client gave up waiting: close the channel (the pod drops its connection).
    core::logger("tunnel")->info("pod opened {}:{} after its client gave up; closing it",
                                 c.target.host, c.target.port);
    c.dead = true;
  }
  return true;
}

}  // namespace autopod::tunnel
