#include "sandbox/tcp_target.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace autopod::sandbox {

using core::ErrorCode;
using core::fail;

void fill_pattern(std::uint64_t seed, std::uint64_t offset, char* out, std::size_t n) {
  for (std::size_t i = 0; i < n;) {
    std::uint64_t word_index = (offset + i) / 8;
    std::uint64_t z = seed + word_index * 0x9E3779B97F4A7C15ULL;  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    for (std::size_t b = (offset + i) % 8; b < 8 && i < n; ++b, ++i)
      out[i] = static_cast<char>((z >> (8 * b)) & 0xFF);
  }
}

namespace {

bool read_full(int fd, char* buf, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, buf + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

std::uint64_t be64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void serve(int fd) {
  char cmd = 0;
  if (!read_full(fd, &cmd, 1)) return;
  std::vector<char> buf(256 * 1024), expect(256 * 1024);
  if (cmd == 'E') {
    for (;;) {
      ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
      if (r <= 0 || !write_full(fd, buf.data(), static_cast<std::size_t>(r))) break;
    }
  } else if (cmd == 'P' || cmd == 'G') {
    char hdr[16];
    if (!read_full(fd, hdr, 16)) return;
    std::uint64_t n = be64(hdr), seed = be64(hdr + 8);
    bool ok = true;
    for (std::uint64_t off = 0; off < n;) {
      std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), n - off));
      if (cmd == 'P') {
        ssize_t r = ::recv(fd, buf.data(), chunk, 0);
        if (r <= 0) {
          ok = false;
          break;
        }
        fill_pattern(seed, off, expect.data(), static_cast<std::size_t>(r));
        if (std::memcmp(buf.data(), expect.data(), static_cast<std::size_t>(r)) != 0) ok = false;
        off += static_cast<std::uint64_t>(r);
      } else {
        fill_pattern(seed, off, buf.data(), chunk);
        if (!write_full(fd, buf.data(), chunk)) return;
        off += chunk;
      }
    }
    if (cmd == 'P') write_full(fd, ok ? "OK" : "BAD", ok ? 2 : 3);
  } else if (cmd == 'Z' || cmd == 'Y') {
    char hdr[8];
    if (!read_full(fd, hdr, 8)) return;
    std::uint64_t n = be64(hdr);
    for (std::uint64_t off = 0; off < n;) {
      std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), n - off));
      if (cmd == 'Z') {
        ssize_t r = ::recv(fd, buf.data(), chunk, 0);
        if (r <= 0) return;
        off += static_cast<std::uint64_t>(r);
      } else {
        if (!write_full(fd, buf.data(), chunk)) return;
        off += chunk;
      }
    }
    if (cmd == 'Z') write_full(fd, "OK", 2);
  } else if (cmd == 'H') {
    std::uint64_t total = 0;
    for (;;) {
      ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
      if (r <= 0) break;
      total += static_cast<std::uint64_t>(r);
    }
    std::string reply = std::to_string(total);
    write_full(fd, reply.data(), reply.size());
  }
}

}  // namespace

bool write_full(int fd, const char* buf, std::size_t n) {
  std::size_t sent = 0;
  while (sent < n) {
    ssize_t r = ::send(fd, buf + sent, n - sent, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    sent += static_cast<std::size_t>(r);
  }
  return true;
}

struct TcpTarget::Impl {
  enum class Mode { serve, pause, stop };
  int listen_fd = -1;
  int port = 0;
  int wake = -1;  // eventfd: the acceptor re-reads `mode`
  std::thread acceptor;
  std::mutex mutex;
  std::condition_variable changed;
  Mode mode = Mode::serve;
  bool acceptor_idle = false;  // the acceptor saw a mode other than serve and waits
  std::set<int> open;
  std::vector<int> fillers;  // our own connections that keep a paused listen queue full
  std::vector<std::thread> workers;
  std::atomic<std::uint64_t> connections{0};

  void set_mode(Mode m) {
    {
      std::lock_guard lock(mutex);
      mode = m;
    }
    std::uint64_t one = 1;
    (void)!::write(wake, &one, sizeof one);
    if (m == Mode::serve) return;
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return acceptor_idle; });
  }

  void accept_loop() {
    for (;;) {
      Mode m;
      {
        std::lock_guard lock(mutex);
        m = mode;
        acceptor_idle = m != Mode::serve;
      }
      changed.notify_all();
      if (m == Mode::stop) return;
      pollfd p[2] = {{wake, POLLIN, 0}, {m == Mode::serve ? listen_fd : -1, POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[0].revents & POLLIN) {
        std::uint64_t v;
        (void)!::read(wake, &v, sizeof v);
        continue;
      }
      if (!(p[1].revents & POLLIN)) continue;
      int c = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections;
      std::lock_guard lock(mutex);
      open.insert(c);
      workers.emplace_back([this, c] {
        serve(c);
        {
          std::lock_guard l(mutex);
          open.erase(c);
        }
        ::close(c);
      });
    }
  }

  // Connections waiting in the listen queue, and how many fit (TCP_INFO of a listener).
  std::pair<unsigned, unsigned> queue() const {
    tcp_info info{};
    socklen_t len = sizeof info;
    ::getsockopt(listen_fd, IPPROTO_TCP, TCP_INFO, &info, &len);
    return {info.tcpi_unacked, info.tcpi_sacked};
  }
};

TcpTarget::TcpTarget() : m_impl(std::make_unique<Impl>()) {}

TcpTarget::~TcpTarget() {
  if (m_impl->acceptor.joinable()) {
    m_impl->set_mode(Impl::Mode::stop);
    m_impl->acceptor.join();
  }
  {
    std::lock_guard lock(m_impl->mutex);
    for (int fd : m_impl->open) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& w : m_impl->workers) w.join();
  for (int fd : m_impl->fillers) ::close(fd);
  if (m_impl->listen_fd >= 0) ::close(m_impl->listen_fd);
  if (m_impl->wake >= 0) ::close(m_impl->wake);
}

core::Status TcpTarget::start() {
  TRY_ASSIGN(auto listener, listen_loopback(256));
  m_impl->listen_fd = listener.fd;
  m_impl->port = listener.port;
  m_impl->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (m_impl->wake < 0) return fail(ErrorCode::io, std::string("eventfd: ") + std::strerror(errno));
  m_impl->acceptor = std::thread([impl = m_impl.get()] { impl->accept_loop(); });
  return {};
}

core::Status TcpTarget::pause_accepting() {
  m_impl->set_mode(Impl::Mode::pause);
  // Linux drops a SYN while the accept queue holds more than the backlog: with backlog 0, one
  // connection of our own fills it.
  ::listen(m_impl->listen_fd, 0);
  for (;;) {
    auto [queued, room] = m_impl->queue();
    if (queued > room) return {};
    TRY_ASSIGN(int fd, connect_tcp(m_impl->port));
    m_impl->fillers.push_back(fd);
  }
}

void TcpTarget::resume_accepting() {
  ::listen(m_impl->listen_fd, 256);
  m_impl->set_mode(Impl::Mode::serve);
  for (int fd : m_impl->fillers) ::close(fd);  // accepted and served like any client: EOF
  m_impl->fillers.clear();
}

void TcpTarget::refuse() {
  m_impl->set_mode(Impl::Mode::pause);
  ::close(m_impl->listen_fd);
  m_impl->listen_fd = -1;
}

int TcpTarget::port() const { return m_impl->port; }
std::uint64_t TcpTarget::connections() const { return m_impl->connections; }

core::Result<Listener> listen_loopback(int backlog) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(ErrorCode::io, std::string("listen: socket: ") + std::strerror(errno));
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    ::close(fd);
    return fail(ErrorCode::io, std::string("listen on 127.0.0.1: ") + std::strerror(e));
  }
  return Listener{fd, ntohs(addr.sin_port)};
}

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

}  // namespace autopod::sandbox
