// core::Sftp over libssh2 1.10's SFTP (version 3), in blocking mode.

#include "core/sftp.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace autopod::core {

namespace {

std::string sftp_status_text(unsigned long status) {
  switch (status) {
    case LIBSSH2_FX_NO_SUCH_FILE:
      return "no such file";
    case LIBSSH2_FX_PERMISSION_DENIED:
      return "permission denied";
    case LIBSSH2_FX_FAILURE:
      return "failure (it may exist already, or the disk is full)";
    case LIBSSH2_FX_OP_UNSUPPORTED:
      return "not supported by the server";
    case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
      return "no space left";
    case LIBSSH2_FX_QUOTA_EXCEEDED:
      return "quota exceeded";
    case LIBSSH2_FX_FILE_ALREADY_EXISTS:
      return "file exists";
    case LIBSSH2_FX_NO_SUCH_PATH:
      return "no such path";
    default:
      return "status " + std::to_string(status);
  }
}

// One failure of an SFTP call, as an Error naming `what` (the call and the path).
Error sftp_error(LIBSSH2_SESSION* session, LIBSSH2_SFTP* sftp, const std::string& what) {
  int rc = libssh2_session_last_errno(session);
  if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
    auto status = libssh2_sftp_last_error(sftp);
    ErrorCode code = ErrorCode::io;
    if (status == LIBSSH2_FX_NO_SUCH_FILE || status == LIBSSH2_FX_NO_SUCH_PATH)
      code = ErrorCode::not_found;
    if (status == LIBSSH2_FX_OP_UNSUPPORTED)
      code = ErrorCode::unsupported;
    return make_error(code, "sftp " + what + ": " + sftp_status_text(status), "");
  }
  if (rc == LIBSSH2_ERROR_TIMEOUT)
    return make_error(ErrorCode::timeout, "sftp " + what + ": no answer from the pod in time",
                      "check the pod is running (autopod info) and try again");
  return make_error(ErrorCode::network,
                    "sftp " + what + ": ssh session lost: " + ssh_error(session),
                    "check the pod is running (autopod info) and try again");
}

SftpAttrs to_attrs(const LIBSSH2_SFTP_ATTRIBUTES& a) {
  SftpAttrs out;
  if (a.flags & LIBSSH2_SFTP_ATTR_SIZE)
    out.size = static_cast<std::int64_t>(a.filesize);
  if (a.flags & LIBSSH2_SFTP_ATTR_ACMODTIME)
    out.mtime_s = static_cast<std::int64_t>(a.mtime);
  if (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS)
    out.permissions = static_cast<std::uint32_t>(a.permissions);
  return out;
}

}  // namespace

bool SftpAttrs::is_dir() const {
  return (permissions & S_IFMT) == S_IFDIR;
}
bool SftpAttrs::is_regular() const {
  return (permissions & S_IFMT) == S_IFREG;
}
bool SftpAttrs::is_link() const {
  return (permissions & S_IFMT) == S_IFLNK;
}

Result<std::unique_ptr<Sftp>> Sftp::start(SshSession& session) {
  LIBSSH2_SFTP* sftp = libssh2_sftp_init(session.get());
  if (!sftp)
    return fail(ErrorCode::remote,
                "the pod's sshd refused the sftp subsystem: " + ssh_error(session.get()),
                "its sshd_config needs a 'Subsystem sftp' line");
  return std::unique_ptr<Sftp>(new Sftp(sftp, session.get()));
}

Sftp::~Sftp() {
  libssh2_sftp_shutdown(m_sftp);
}

Status Sftp::failure(const std::string& what, const std::string& path) {
  return fail(sftp_error(m_session, m_sftp, what + " " + path));
}

Result<SftpAttrs> Sftp::stat_as(const std::string& path, int type) {
  LIBSSH2_SFTP_ATTRIBUTES attrs{};
  if (libssh2_sftp_stat_ex(m_sftp, path.data(), static_cast<unsigned>(path.size()), type, &attrs) !=
      0)
    return fail(failure(type == LIBSSH2_SFTP_LSTAT ? "lstat" : "stat", path).error());
  return to_attrs(attrs);
}

Result<SftpAttrs> Sftp::stat(const std::string& path) {
  return stat_as(path, LIBSSH2_SFTP_STAT);
}
Result<SftpAttrs> Sftp::lstat(const std::string& path) {
  return stat_as(path, LIBSSH2_SFTP_LSTAT);
}

Result<std::string> Sftp::realpath(const std::string& path) {
  std::vector<char> out(4096);
  int n =
      libssh2_sftp_symlink_ex(m_sftp, path.data(), static_cast<unsigned>(path.size()), out.data(),
                              static_cast<unsigned>(out.size()), LIBSSH2_SFTP_REALPATH);
  if (n < 0)
    return fail(failure("realpath", path).error());
  return std::string(out.data(), static_cast<std::size_t>(n));
}

Status Sftp::mkdir(const std::string& path, int mode) {
  if (libssh2_sftp_mkdir_ex(m_sftp, path.data(), static_cast<unsigned>(path.size()), mode) == 0)
    return {};
  auto error = failure("mkdir", path);
  auto st = stat(path);  // OpenSSH answers a plain failure when it exists
  if (st && st->is_dir())
    return {};
  return error;
}

Status Sftp::rename(const std::string& from, const std::string& to) {
  long flags =
      LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE;
  if (libssh2_sftp_rename_ex(m_sftp, from.data(), static_cast<unsigned>(from.size()), to.data(),
                             static_cast<unsigned>(to.size()), flags) == 0)
    return {};
  return failure("rename", from + " to " + to);
}

Status Sftp::unlink(const std::string& path) {
  if (libssh2_sftp_unlink_ex(m_sftp, path.data(), static_cast<unsigned>(path.size())) == 0)
    return {};
  auto error = failure("unlink", path);
  if (error.error().code == ErrorCode::not_found)
    return {};
  return error;
}

Result<std::unique_ptr<SftpFile>> Sftp::open(const std::string& path, SftpOpen mode) {
  unsigned long flags = LIBSSH2_FXF_READ;
  if (mode == SftpOpen::write)
    flags = LIBSSH2_FXF_READ | LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT;
  if (mode == SftpOpen::truncate)
    flags |= LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC;
  LIBSSH2_SFTP_HANDLE* handle = libssh2_sftp_open_ex(
      m_sftp, path.data(), static_cast<unsigned>(path.size()), flags, 0644, LIBSSH2_SFTP_OPENFILE);
  if (!handle)
    return fail(failure("open", path).error());
  return std::unique_ptr<SftpFile>(new SftpFile(m_sftp, handle, m_session, path));
}

SftpFile::~SftpFile() {
  libssh2_sftp_close_handle(m_handle);
}

Status SftpFile::failure(const std::string& what) {
  return fail(sftp_error(m_session, m_sftp, what + " " + m_path));
}

Status SftpFile::seek(std::int64_t offset) {
  if (offset != m_position)
    libssh2_sftp_seek64(m_handle, static_cast<libssh2_uint64_t>(offset));
  m_position = offset;
  return {};
}

Status SftpFile::write_at(std::int64_t offset, std::string_view data) {
  TRY(seek(offset));
  while (!data.empty()) {
    auto n = libssh2_sftp_write(m_handle, data.data(), data.size());
    if (n < 0)
      return failure("write");
    data.remove_prefix(static_cast<std::size_t>(n));
    m_position += n;
  }
  return {};
}

Status SftpFile::copy_from(int fd,
                           std::int64_t from,
                           std::int64_t length,
                           std::int64_t at,
                           const std::function<void(const char*, std::size_t)>& on_block,
                           const std::function<bool(std::int64_t done)>& on_progress) {
  TRY(seek(at));
  constexpr std::size_t k_window = 4u << 20;
  std::vector<char> buf(k_window);
  std::size_t begin = 0, end = 0;  // [begin, end): read here, not yet acknowledged by the server
  std::int64_t read = 0, acked = 0;
  while (acked < length) {
    if (begin >= k_window / 2) {  // libssh2 counts what it sent from the start of what it is
      std::memmove(buf.data(), buf.data() + begin, end - begin);  // given, not by address
      end -= begin, begin = 0;
    }
    while (end < k_window && read < length) {
      auto want = static_cast<std::size_t>(
          std::min<std::int64_t>(static_cast<std::int64_t>(k_window - end), length - read));
      ssize_t n = ::pread(fd, buf.data() + end, want, from + read);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return fail(ErrorCode::io, std::string("reading the local file: ") + std::strerror(errno));
      if (n == 0)
        return fail(ErrorCode::io, "the local file ended early (was it changed while sent?)");
      if (on_block)
        on_block(buf.data() + end, static_cast<std::size_t>(n));
      end += static_cast<std::size_t>(n), read += n;
    }
    auto n = libssh2_sftp_write(m_handle, buf.data() + begin, end - begin);
    if (n < 0)
      return failure("write");
    begin += static_cast<std::size_t>(n), acked += n, m_position += n;
    if (on_progress && !on_progress(acked))
      return fail(ErrorCode::cancelled, "upload of " + m_path + " cancelled");
  }
  return {};
}

Result<std::string> SftpFile::read_at(std::int64_t offset, std::size_t length) {
  TRY(seek(offset));
  std::string out(length, '\0');
  std::size_t got = 0;
  while (got < length) {
    auto n = libssh2_sftp_read(m_handle, out.data() + got, length - got);
    if (n < 0)
      return fail(failure("read").error());
    if (n == 0)
      break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  m_position += static_cast<std::int64_t>(got);
  return out;
}

Status SftpFile::fsync() {
  if (libssh2_sftp_fsync(m_handle) == 0)
    return {};
  return failure("fsync");
}

Result<SftpAttrs> SftpFile::stat() {
  LIBSSH2_SFTP_ATTRIBUTES attrs{};
  if (libssh2_sftp_fstat_ex(m_handle, &attrs, 0) != 0)
    return fail(failure("fstat").error());
  return to_attrs(attrs);
}

}  // namespace autopod::core
