// SHA-256 through OpenSSL's EVP interface (SHA-NI where the CPU has it).

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "models/internal.hpp"

namespace autopod::models {

Sha256::Sha256() : m_ctx(EVP_MD_CTX_new()) {
  ASSERT(m_ctx && EVP_DigestInit_ex(m_ctx.get(), EVP_sha256(), nullptr) == 1);
}

void Sha256::update(const void* data, std::size_t n) {
  ASSERT(EVP_DigestUpdate(m_ctx.get(), data, n) == 1);
}

Sha256 Sha256::copy() const {
  Sha256 other;
  ASSERT(EVP_MD_CTX_copy_ex(other.m_ctx.get(), m_ctx.get()) == 1);
  return other;
}

std::string Sha256::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASSERT(EVP_DigestFinal_ex(m_ctx.get(), digest, &len) == 1);
  static const char* const k_hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += k_hex[digest[i] >> 4];
    out += k_hex[digest[i] & 15];
  }
  return out;
}

Sha256Worker::Sha256Worker(Sha256 start) : m_sha(std::move(start)), m_thread([this] { run(); }) {}

Sha256Worker::~Sha256Worker() {
  {
    std::lock_guard lock(m_mutex);
    m_closed = true;
  }
  m_changed.notify_all();
  if (m_thread.joinable())
    m_thread.join();
}

void Sha256Worker::update(const void* data, std::size_t n) {
  constexpr std::size_t k_max_queued = 16u << 20;
  std::string block(static_cast<const char*>(data), n);
  std::unique_lock lock(m_mutex);
  m_changed.wait(lock, [&] { return m_queued_bytes == 0 || m_queued_bytes + n <= k_max_queued; });
  m_queued_bytes += n;
  m_blocks.push_back(std::move(block));
  m_changed.notify_all();
}

void Sha256Worker::run() {
  for (;;) {
    std::string block;
    {
      std::unique_lock lock(m_mutex);
      m_changed.wait(lock, [&] { return m_closed || !m_blocks.empty(); });
      if (m_blocks.empty())
        return;
      block = std::move(m_blocks.front());
      m_blocks.pop_front();
    }
    m_sha.update(block.data(), block.size());
    {
      std::lock_guard lock(m_mutex);
      m_queued_bytes -= block.size();
    }
    m_changed.notify_all();
  }
}

std::string Sha256Worker::hex() {
  {
    std::lock_guard lock(m_mutex);
    m_closed = true;
  }
  m_changed.notify_all();
  m_thread.join();  // the thread drains the queue before it sees it closed and empty
  return m_sha.hex();
}

core::Result<std::string> sha256_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return core::fail(core::ErrorCode::io,
                      "cannot read " + path.string() + ": " + std::strerror(errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return core::fail(core::ErrorCode::io,
                        "cannot read " + path.string() + ": " + std::strerror(err));
    }
    if (n == 0) break;
    sha.update(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return sha.hex();
}

}  // namespace autopod::models
