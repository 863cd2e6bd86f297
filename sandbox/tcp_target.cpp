#include "sandbox/tcp_target.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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

std::uint64_t be64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void put_be64(char* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
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

struct TcpTarget::Impl {
  int listen_fd = -1;
  int port = 0;
  std::thread acceptor;
  std::mutex mutex;
  std::set<int> open;
  std::vector<std::thread> workers;
  std::atomic<std::uint64_t> connections{0};
  std::atomic<bool> stopping{false};
};

TcpTarget::TcpTarget() : m_impl(std::make_unique<Impl>()) {}

TcpTarget::~TcpTarget() {
  m_impl->stopping = true;
  if (m_impl->listen_fd >= 0) ::shutdown(m_impl->listen_fd, SHUT_RDWR);
  if (m_impl->acceptor.joinable()) m_impl->acceptor.join();
  {
    std::lock_guard lock(m_impl->mutex);
    for (int fd : m_impl->open) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& w : m_impl->workers) w.join();
  if (m_impl->listen_fd >= 0) ::close(m_impl->listen_fd);
}

core::Status TcpTarget::start() {
  TRY_ASSIGN(auto listener, listen_loopback(256));
  m_impl->listen_fd = listener.fd;
  m_impl->port = listener.port;
  m_impl->acceptor = std::thread([impl = m_impl.get()] {
    for (;;) {
      int c = ::accept4(impl->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (impl->stopping) return;
        continue;
      }
      ++impl->connections;
      std::lock_guard lock(impl->mutex);
      impl->open.insert(c);
      impl->workers.emplace_back([impl, c] {
        serve(c);
        {
          std::lock_guard l(impl->mutex);
          impl->open.erase(c);
        }
        ::close(c);
      });
    }
  });
  return {};
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

core::Result<int> connect_tcp(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    return fail(ErrorCode::network, "connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(err));
  }
  int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  return fd;
}

namespace {
struct Fd {
  int fd;
  ~Fd() { ::close(fd); }
};
}  // namespace

core::Status push_pattern(int port, std::uint64_t bytes, std::uint64_t seed) {
  TRY_ASSIGN(int fd, connect_tcp(port));
  Fd guard{fd};
  char hdr[17] = {'P'};
  put_be64(hdr + 1, bytes);
  put_be64(hdr + 9, seed);
  if (!write_full(fd, hdr, 17)) return fail(ErrorCode::network, "push: header not sent");
  std::vector<char> buf(256 * 1024);
  for (std::uint64_t off = 0; off < bytes;) {
    std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), bytes - off));
    fill_pattern(seed, off, buf.data(), chunk);
    if (!write_full(fd, buf.data(), chunk))
      return fail(ErrorCode::network, "push: cut after " + std::to_string(off) + " bytes");
    off += chunk;
  }
  char reply[3] = {};
  ssize_t r = ::recv(fd, reply, sizeof reply, MSG_WAITALL);
  if (r == 2 && std::string(reply, 2) == "OK") return {};
  return fail(ErrorCode::protocol, "push: the target saw different bytes (" + std::string(reply, r > 0 ? static_cast<std::size_t>(r) : 0) + ")");
}

core::Status pull_pattern(int port, std::uint64_t bytes, std::uint64_t seed) {
  TRY_ASSIGN(int fd, connect_tcp(port));
  Fd guard{fd};
  char hdr[17] = {'G'};
  put_be64(hdr + 1, bytes);
  put_be64(hdr + 9, seed);
  if (!write_full(fd, hdr, 17)) return fail(ErrorCode::network, "pull: header not sent");
  std::vector<char> buf(256 * 1024), expect(256 * 1024);
  std::uint64_t off = 0;
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    fill_pattern(seed, off, expect.data(), static_cast<std::size_t>(r));
    if (std::memcmp(buf.data(), expect.data(), static_cast<std::size_t>(r)) != 0)
      return fail(ErrorCode::protocol, "pull: wrong bytes at offset " + std::to_string(off));
    off += static_cast<std::uint64_t>(r);
  }
  if (off != bytes)
    return fail(ErrorCode::network, "pull: got " + std::to_string(off) + " of " + std::to_string(bytes) + " bytes");
  return {};
}

core::Status push_bytes(int port, std::uint64_t bytes) {
  TRY_ASSIGN(int fd, connect_tcp(port));
  Fd guard{fd};
  char hdr[9] = {'Z'};
  put_be64(hdr + 1, bytes);
  if (!write_full(fd, hdr, 9)) return fail(ErrorCode::network, "push: header not sent");
  std::vector<char> buf(256 * 1024, 'z');
  for (std::uint64_t off = 0; off < bytes;) {
    std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), bytes - off));
    if (!write_full(fd, buf.data(), chunk)) return fail(ErrorCode::network, "push: cut");
    off += chunk;
  }
  char reply[2];
  if (::recv(fd, reply, 2, MSG_WAITALL) != 2) return fail(ErrorCode::network, "push: no reply");
  return {};
}

core::Status pull_bytes(int port, std::uint64_t bytes) {
  TRY_ASSIGN(int fd, connect_tcp(port));
  Fd guard{fd};
  char hdr[9] = {'Y'};
  put_be64(hdr + 1, bytes);
  if (!write_full(fd, hdr, 9)) return fail(ErrorCode::network, "pull: header not sent");
  std::vector<char> buf(256 * 1024);
  std::uint64_t got = 0;
  for (;;) {
    ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::uint64_t>(r);
  }
  if (got != bytes) return fail(ErrorCode::network, "pull: got " + std::to_string(got) + " of " + std::to_string(bytes));
  return {};
}

core::Result<std::string> half_close_exchange(int port, const std::string& message) {
  TRY_ASSIGN(int fd, connect_tcp(port));
  Fd guard{fd};
  std::string out = "H" + message;
  if (!write_full(fd, out.data(), out.size())) return fail(ErrorCode::network, "half-close: not sent");
  ::shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[256];
  for (;;) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) break;
    reply.append(buf, static_cast<std::size_t>(r));
  }
  return reply;
}

}  // namespace autopod::sandbox
