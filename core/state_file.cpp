#include "core/state_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/fs.hpp"

namespace autopod::core {
namespace {

// Holds flock() on "<file>.lock": a separate file, because the data file is replaced by
// rename and a lock on the old inode would not exclude a writer of the new one.
class FileLock {
 public:
  static Result<FileLock> acquire(const std::filesystem::path& path, int operation) {
    auto lock_path = path.string() + ".lock";
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
      return fail(ErrorCode::io, "cannot open lock " + lock_path + ": " + std::strerror(errno));
    while (::flock(fd, operation) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return fail(ErrorCode::io, "cannot lock " + lock_path + ": " + std::strerror(err));
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (m_fd >= 0) ::close(m_fd);  // closing releases the flock
  }

 private:
  explicit FileLock(int fd) : m_fd(fd) {}
  int m_fd;
};

Result<nlohmann::json> parse_state(const std::filesystem::path& path) {
  auto text = read_file(path);
  if (!text) {
    if (text.error().code == ErrorCode::not_found)
      return nlohmann::json{{"version", StateFile::k_state_version}};
    return fail(text.error());
  }
  try {
    auto doc = nlohmann::json::parse(*text);
    if (!doc.is_object()) throw nlohmann::json::type_error::create(302, "not an object", nullptr);
    return doc;
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::protocol, path.string() + " is not valid state: " + e.what(),
                "move the file aside (autopod starts from an empty one) and report a bug");
  }
}

}  // namespace

StateFile::StateFile(std::filesystem::path path, mode_t mode)
    : m_path(std::move(path)), m_mode(mode) {}

Result<nlohmann::json> StateFile::read() const {
  TRY(ensure_dir(m_path.parent_path()));
  TRY_ASSIGN(auto lock, FileLock::acquire(m_path, LOCK_SH));
  return parse_state(m_path);
}

Result<nlohmann::json> StateFile::update(
    const std::function<Status(nlohmann::json&)>& mutate) {
  TRY(ensure_dir(m_path.parent_path()));
  TRY_ASSIGN(auto lock, FileLock::acquire(m_path, LOCK_EX));
  TRY_ASSIGN(auto doc, parse_state(m_path));
  auto before = doc;
  TRY(mutate(doc));
  doc["version"] = k_state_version;
  if (doc != before) TRY(write_file_atomic(m_path, doc.dump(2) + "\n", m_mode));
  return doc;
}

}  // namespace autopod::core
