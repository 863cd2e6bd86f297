// Client ends of the TCP target's commands (see tcp_target.hpp), for tests and benchmarks.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "sandbox/tcp_target.hpp"

namespace autopod::sandbox {

using core::ErrorCode;
using core::fail;

namespace {

void put_be64(char* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
}

}  // namespace

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
