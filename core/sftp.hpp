#pragma once
// SFTP on a core::SshSession (blocking mode, each call bounded by the session's timeout): what
// models/ needs to place files on a pod's volume. libssh2 1.10 speaks SFTP version 3 only, so
// rename never replaces an existing file on OpenSSH's server (no posix-rename extension) and
// mtimes come in whole seconds. Facts: shared/reference/libssh2-tunnels.md §1.

#include <libssh2_sftp.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "core/ssh_session.hpp"

namespace autopod::core {

struct SftpAttrs {
  std::int64_t size = -1;
  std::int64_t mtime_s = 0;       // whole seconds (SFTP v3)
  std::uint32_t permissions = 0;  // st_mode: type bits and mode
  bool is_dir() const;
  bool is_regular() const;
  bool is_link() const;
};

enum class SftpOpen {
  read,
  write,     // read and write; created (mode 0644) when missing, else kept: writes land at offsets
  truncate,  // read and write; created or emptied
};

// One open remote file; closed at destruction. Reads and writes take explicit offsets.
class SftpFile {
 public:
  ~SftpFile();
  SftpFile(const SftpFile&) = delete;
  SftpFile& operator=(const SftpFile&) = delete;

  // Writes `data` at `offset`. io (naming the file) when the server refuses, network when the
  // session broke.
  Status write_at(std::int64_t offset, std::string_view data);
  // Copies `length` bytes of the local file `fd` from its offset `from` to this file at `at`,
  // keeping up to 4 MiB of SFTP writes in flight (libssh2 1.10 pipelines within one buffer it
  // is handed, 30000 bytes a packet). `on_block(bytes, count)` sees each block read locally, in
  // order, before it is sent (for hashing); `on_progress(done)` after each acknowledgement,
  // returning false cancels (cancelled). io when the local file ends early.
  Status copy_from(int fd,
                   std::int64_t from,
                   std::int64_t length,
                   std::int64_t at,
                   const std::function<void(const char*, std::size_t)>& on_block,
                   const std::function<bool(std::int64_t done)>& on_progress);
  // Up to `length` bytes from `offset` (fewer at the end of the file).
  Result<std::string> read_at(std::int64_t offset, std::size_t length);
  // fsync@openssh.com: unsupported when the server does not offer it.
  Status fsync();
  Result<SftpAttrs> stat();

 private:
  friend class Sftp;
  SftpFile(LIBSSH2_SFTP* sftp,
           LIBSSH2_SFTP_HANDLE* handle,
           LIBSSH2_SESSION* session,
           std::string path)
      : m_sftp(sftp), m_handle(handle), m_session(session), m_path(std::move(path)) {}
  Status seek(std::int64_t offset);
  Status failure(const std::string& what);
  LIBSSH2_SFTP* m_sftp;
  LIBSSH2_SFTP_HANDLE* m_handle;
  LIBSSH2_SESSION* m_session;
  std::string m_path;
  std::int64_t m_position = -1;
};

// An SFTP subsystem channel on a session; must not outlive it. Paths are the server's (absolute,
// or relative to the login directory). Failures name the path; a missing one is not_found,
// a refused one io (with the server's status), a broken session network.
class Sftp {
 public:
  // Starts the subsystem; the session must be in blocking mode (as connect() leaves it).
  static Result<std::unique_ptr<Sftp>> start(SshSession& session);
  ~Sftp();
  Sftp(const Sftp&) = delete;
  Sftp& operator=(const Sftp&) = delete;

  Result<SftpAttrs> stat(const std::string& path);   // follows symlinks
  Result<SftpAttrs> lstat(const std::string& path);  // the link itself
  // The canonical absolute path, symlinks resolved (the path must exist).
  Result<std::string> realpath(const std::string& path);
  Status mkdir(const std::string& path, int mode = 0755);  // an existing directory is fine
  // Moves `from` to `to`; OpenSSH refuses when `to` exists (io).
  Status rename(const std::string& from, const std::string& to);
  Status unlink(const std::string& path);  // a missing file is fine
  Result<std::unique_ptr<SftpFile>> open(const std::string& path, SftpOpen mode);

 private:
  Sftp(LIBSSH2_SFTP* sftp, LIBSSH2_SESSION* session) : m_sftp(sftp), m_session(session) {}
  Result<SftpAttrs> stat_as(const std::string& path, int type);
  Status failure(const std::string& what, const std::string& path);
  LIBSSH2_SFTP* m_sftp;
  LIBSSH2_SESSION* m_session;
};

}  // namespace autopod::core
