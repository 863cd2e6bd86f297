#include "tunnel/forwarder.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "tunnel/forwarder_conn.hpp"
#include "core/ssh_session.hpp"

namespace autopod::tunnel {

using core::ErrorCode;

namespace {
constexpr int k_rounds_per_pass = 8;        // per connection and pass: fairness between streams
// What libssh2 may pull off the socket per pass. Connections drain what it decrypted for them in
// the same pass, so its packet list (our memory) stays near this instead of growing toward the
// channel windows (8 MiB each).
constexpr std::size_t k_recv_budget = 512 * 1024;
}  // namespace


Forwarder::Forwarder(core::SshSession& session, std::uint32_t window_bytes)
    : m_ssh(session), m_session(session.get()), m_socket(session.socket()), m_window(window_bytes) {}

Forwarder::~Forwarder() { close_all(); }

void Forwarder::add_client(int fd, const ForwardTarget& target, const std::string& origin_host,
                           int origin_port, SteadyClock::time_point open_deadline) {
  Conn c;
  c.fd = fd;
  c.target = target;
  c.origin_host = origin_host;
  c.origin_port = origin_port;
  c.open_deadline = open_deadline;
  m_conns.push_back(std::move(c));
  m_to_open.push_back(std::prev(m_conns.end()));
}

bool Forwarder::blocked_outbound() const {
  return libssh2_session_block_directions(m_session) & LIBSSH2_SESSION_BLOCK_OUTBOUND;
}

void Forwarder::add_poll_fds(std::vector<pollfd>& fds) {
  m_poll_base = fds.size();
  short ev = POLLIN;
  if (m_pending != Op::none) {
    int dirs = libssh2_session_block_directions(m_session);
    ev = 0;
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND) ev |= POLLIN;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) ev |= POLLOUT;
    if (!ev) ev = POLLIN | POLLOUT;
  }
  // With no channel nothing reads the session, so only a peer close may wake us: data left
  // unread (e.g. a server keepalive) would otherwise keep poll() returning at once.
  if (m_pending == Op::none && m_conns.empty()) ev = POLLRDHUP;
  fds.push_back({m_socket, ev, 0});
  for (auto& c : m_conns) {
    c.polled = false;
    if (!c.ch || c.dead) continue;
    short e = 0;
    if (c.up_len == 0 && !c.client_eof) e |= POLLIN;
    if (c.down_len > c.down_off) e |= POLLOUT;
    if (!e) continue;
    c.poll_index = fds.size();
    c.polled = true;
    fds.push_back({c.fd, e, 0});
  }
}

core::Status Forwarder::check(int rc, const char* what) {
  // Channel-level refusals leave the session usable; anything on the socket does not.
  switch (rc) {
    case LIBSSH2_ERROR_CHANNEL_FAILURE:
    case LIBSSH2_ERROR_CHANNEL_CLOSED:
    case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
    case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED:
    case LIBSSH2_ERROR_CHANNEL_UNKNOWN:
      return {};
    default:
      return core::fail(ErrorCode::network,
                        std::string("ssh session lost during ") + what + ": " + core::ssh_error(m_session));
  }
}

core::Result<bool> Forwarder::retry_pending() {
  Conn* c = m_pending_conn;
  int rc = 0;
  switch (m_pending) {
    case Op::none:
      return true;
    case Op::open:
      return open_next();
    case Op::write: {
      ssize_t n = libssh2_channel_write(c->ch, c->up.get() + c->up_off, c->up_len - c->up_off);
      if (n == LIBSSH2_ERROR_EAGAIN) return !blocked_outbound() ? (m_pending = Op::none, true) : false;
      m_pending = Op::none;
      if (n < 0) {
        TRY(check(static_cast<int>(n), "write"));
        c->dead = true;
        return true;
      }
      c->up_off += static_cast<std::size_t>(n);
      m_stats.bytes_to_pod += static_cast<std::uint64_t>(n);
      if (c->up_off == c->up_len) c->up_len = c->up_off = 0;
      return true;
    }
    case Op::send_eof:
      rc = libssh2_channel_send_eof(c->ch);
      if (rc == LIBSSH2_ERROR_EAGAIN && blocked_outbound()) return false;
      m_pending = Op::none;
      if (rc == 0) c->eof_sent = true;
      else if (rc != LIBSSH2_ERROR_EAGAIN) {
        TRY(check(rc, "eof"));
        c->dead = true;
      }
      return true;
    case Op::read: {
      ssize_t n = libssh2_channel_read(c->ch, c->down.get(), k_chunk);
      if (n == LIBSSH2_ERROR_EAGAIN && blocked_outbound()) return false;
      m_pending = Op::none;
      if (n > 0) {
        c->down_len = static_cast<std::size_t>(n);
        c->down_off = 0;
        m_stats.bytes_from_pod += static_cast<std::uint64_t>(n);
      } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
        TRY(check(static_cast<int>(n), "read"));
        c->dead = true;
      }
      return true;
    }
    case Op::free:
      rc = libssh2_channel_free(m_pending_channel);
      if (rc == LIBSSH2_ERROR_EAGAIN) return false;
      m_pending = Op::none;
      m_pending_channel = nullptr;
      return true;
  }
  return true;
}

core::Result<bool> Forwarder::pump(Conn& c, bool client_readable) {
  bool progress = false;
  for (int round = 0; round < k_rounds_per_pass && !c.dead; ++round) {
    bool moved = false;
    // client -> pod
    if (c.up_len == 0 && !c.client_eof && client_readable) {
      ssize_t n = ::recv(c.fd, c.up.get(), k_chunk, 0);
      if (n > 0) {
        c.up_len = static_cast<std::size_t>(n);
        c.up_off = 0;
      } else if (n == 0) {
        c.client_eof = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        c.dead = true;  // reset by the client
        break;
      } else {
        client_readable = false;
      }
    }
    if (c.up_len > c.up_off) {
      ssize_t n = libssh2_channel_write(c.ch, c.up.get() + c.up_off, c.up_len - c.up_off);
      if (n > 0) {
        c.up_off += static_cast<std::size_t>(n);
        m_stats.bytes_to_pod += static_cast<std::uint64_t>(n);
        if (c.up_off == c.up_len) c.up_len = c.up_off = 0;
        moved = true;
      } else if (n == LIBSSH2_ERROR_EAGAIN) {
        if (blocked_outbound()) {
          m_pending = Op::write;
          m_pending_conn = &c;
          return true;
        }
      } else if (n < 0) {
        TRY(check(static_cast<int>(n), "write"));
        c.dead = true;
        break;
      }
    }
    if (c.up_len == 0 && c.client_eof && !c.eof_sent) {
      int rc = libssh2_channel_send_eof(c.ch);
      if (rc == 0) {
        c.eof_sent = true;
      } else if (rc == LIBSSH2_ERROR_EAGAIN) {
        if (blocked_outbound()) {
          m_pending = Op::send_eof;
          m_pending_conn = &c;
          return true;
        }
      } else {
        TRY(check(rc, "eof"));
        c.dead = true;
        break;
      }
    }
    // pod -> client: drain what libssh2 holds for this channel while the client takes it (the
    // per-pass receive budget, not a round count, bounds this, so nothing piles up in libssh2).
    for (;;) {
      if (c.down_len > c.down_off) {
        ssize_t n = ::send(c.fd, c.down.get() + c.down_off, c.down_len - c.down_off, MSG_NOSIGNAL);
        if (n > 0) {
          c.down_off += static_cast<std::size_t>(n);
          if (c.down_off == c.down_len) c.down_len = c.down_off = 0;
          moved = true;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          c.dead = true;  // the client went away
        }
        if (c.down_len) break;  // the client is full: the channel window holds the pod back
      }
      if (c.dead || c.channel_eof) break;
      ssize_t n = libssh2_channel_read(c.ch, c.down.get(), k_chunk);
      if (n > 0) {
        c.down_len = static_cast<std::size_t>(n);
        c.down_off = 0;
        m_stats.bytes_from_pod += static_cast<std::uint64_t>(n);
        moved = true;
        continue;
      }
      if (n == LIBSSH2_ERROR_EAGAIN) {
        if (blocked_outbound()) {  // a window adjust is half sent: repeat this read first
          m_pending = Op::read;
          m_pending_conn = &c;
          return true;
        }
      } else if (n == 0 || libssh2_channel_eof(c.ch)) {
        if (libssh2_channel_eof(c.ch)) c.channel_eof = true;
      } else {
        TRY(check(static_cast<int>(n), "read"));
        c.dead = true;
      }
      break;
    }
    if (c.dead) break;
    if (c.channel_eof && c.down_len == 0 && !c.shut_wr) {
      ::shutdown(c.fd, SHUT_WR);
      c.shut_wr = true;
      moved = true;
    }
    if (!moved) break;
    progress = true;
  }
  return progress;
}

void Forwarder::finish(std::list<Conn>::iterator it) {
  if (it->ch) {
    int rc = libssh2_channel_free(it->ch);
    if (rc == LIBSSH2_ERROR_EAGAIN && blocked_outbound()) {
      m_pending = Op::free;
      m_pending_channel = it->ch;
    }
  }
  if (it->fd >= 0) {
    ::shutdown(it->fd, SHUT_RDWR);
    ::close(it->fd);
  }
  m_conns.erase(it);
}

core::Result<bool> Forwarder::service(const std::vector<pollfd>& fds) {
  m_ssh.set_recv_budget(k_recv_budget);
  const pollfd& s = fds.at(m_poll_base);
  if (s.revents & (POLLERR | POLLNVAL))
    return core::fail(ErrorCode::network, "ssh connection failed (socket error)");
  if (m_conns.empty() && (s.revents & (POLLRDHUP | POLLHUP)))
    return core::fail(ErrorCode::network, "ssh connection closed by the server");
  if (m_pending != Op::none) {
    TRY_ASSIGN(bool done, retry_pending());
    if (!done || m_pending != Op::none) return false;
  }
  bool progress = false;
  if (m_to_open.size() && m_pending == Op::none) {
    TRY_ASSIGN(bool opened, open_next());
    progress = progress || opened;
    if (m_pending != Op::none) return progress;
  }
  // Round-robin start so no stream always goes first.
  std::size_t n = m_conns.size();
  if (n == 0) return progress;
  m_rotation = (m_rotation + 1) % n;
  auto it = m_conns.begin();
  std::advance(it, static_cast<long>(m_rotation));
  for (std::size_t i = 0; i < n; ++i) {
    if (it == m_conns.end()) it = m_conns.begin();
    Conn& c = *it;
    auto next = std::next(it);
    if (c.ch && !c.dead) {
      bool readable = c.polled && (fds[c.poll_index].revents & (POLLIN | POLLHUP | POLLERR));
      TRY_ASSIGN(bool moved, pump(c, readable || c.up_len > 0));
      progress = progress || moved;
      if (m_pending != Op::none) return true;
    }
    bool done = c.client_eof && c.eof_sent && c.channel_eof && c.shut_wr;
    if ((c.dead || done) && (c.ch || c.dead)) {
      bool opening = !m_to_open.empty() && &*m_to_open.front() == &c;
      if (!opening) {
        if (m_pending_conn == &c) m_pending_conn = nullptr;
        finish(it);
        progress = true;
        if (m_pending != Op::none) return true;
      }
    }
    it = next;
  }
  return progress;
}

void Forwarder::close_all() {
  for (auto& c : m_conns) {
    if (c.fd < 0) continue;
    ::shutdown(c.fd, SHUT_RDWR);
    ::close(c.fd);
  }
  m_conns.clear();
  m_to_open.clear();
  m_pending = Op::none;
  m_pending_conn = nullptr;
}

ForwarderStats Forwarder::stats() const {
  ForwarderStats s = m_stats;
  for (const auto& c : m_conns) s.connections_open += c.fd >= 0;
  for (auto it : m_to_open) s.opens_pending += it->fd >= 0;
  return s;
}

}  // namespace autopod::tunnel
