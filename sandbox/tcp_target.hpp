#pragma once
// A TCP service behind the pod's sshd, for tunnel tests and benchmarks. Each connection starts
// with one command byte:
//   'E'            echo everything until EOF, then close
//   'P' N(8) S(8)  read N bytes of pattern S (see fill_pattern), reply "OK" or "BAD" and close
//   'G' N(8) S(8)  send N bytes of pattern S, then close
//   'H'            read until EOF (the client half-closes), reply the byte count as text, close
//   'Z' N(8)       read N bytes without checking them, reply "OK" and close (benchmarks)
//   'Y' N(8)       send N bytes of a fixed buffer, then close (benchmarks)
// Integers are big-endian.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/result.hpp"

namespace autopod::sandbox {

// Deterministic bytes: byte i of pattern `seed` depends only on (seed, i), so both ends of a
// transfer can produce or check any part of it.
void fill_pattern(std::uint64_t seed, std::uint64_t offset, char* out, std::size_t n);

class TcpTarget {
 public:
  TcpTarget();
  ~TcpTarget();
  TcpTarget(const TcpTarget&) = delete;
  TcpTarget& operator=(const TcpTarget&) = delete;
  core::Status start();  // 127.0.0.1, a free port
  // Stops accepting and fills the listen queue with a connection of its own, so that new
  // connections hang in connect() (the kernel drops their SYNs), as with a firewalled or
  // overloaded service; accepted connections go on. Returns once a new SYN would be dropped.
  core::Status pause_accepting();
  // Accepts again: a connect() left hanging completes at its next SYN retransmission (1 s, then
  // 3 s, 7 s... after it began), which makes a slowly accepting service.
  void resume_accepting();
  // Closes the listening socket: new connections are refused; accepted ones go on.
  void refuse();
  int port() const;
  std::uint64_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// A TCP port on 127.0.0.1 that was free at the time of the call.
int free_loopback_port();

struct Listener {
  int fd = -1;
  int port = 0;
};
// A listening socket on 127.0.0.1 on a port the kernel picks (SO_REUSEADDR, close-on-exec).
core::Result<Listener> listen_loopback(int backlog);

// Sends all `n` bytes on a blocking socket (retrying EINTR); false when the peer is gone.
bool write_full(int fd, const char* buf, std::size_t n);

// Client helpers (blocking sockets): each returns an error when the bytes are not exact.
core::Result<int> connect_tcp(int port);
core::Status push_pattern(int port, std::uint64_t bytes, std::uint64_t seed);
core::Status pull_pattern(int port, std::uint64_t bytes, std::uint64_t seed);
// Benchmark transfers: N bytes each way without generating or checking patterns, so the
// measuring client costs little CPU.
core::Status push_bytes(int port, std::uint64_t bytes);
core::Status pull_bytes(int port, std::uint64_t bytes);
// Sends `message`, half-closes, returns the reply.
core::Result<std::string> half_close_exchange(int port, const std::string& message);

}  // namespace autopod::sandbox
