// models::push_file: SFTP upload with resume and sha256 on both ends (models/push.hpp).

#include "models/push.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/log.hpp"
#include "core/sftp.hpp"
#include "models/internal.hpp"
#include "models/models.hpp"

namespace autopod::models {

namespace {

using core::ErrorCode;
using core::fail;
using namespace std::chrono_literals;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Hashing on the pod reads 0.5-1.2 GB/s; allow a slow volume 50 MB/s, and never less than a minute.
std::chrono::milliseconds hash_timeout(std::int64_t bytes) {
  return std::max<std::chrono::milliseconds>(60s, std::chrono::milliseconds(bytes / 50'000));
}

// The sha256 of `path` on the pod, over exec: python3's hashlib (OpenSSL: 1.2 GB/s here, where
// coreutils 9.1's sha256sum does 0.45), else sha256sum. Both print the hex digest first.
core::Result<std::string> pod_sha256(core::SshSession& session, const std::string& path, std::int64_t size) {
  const std::string script =
      "import hashlib, sys\n"
      "h = hashlib.sha256()\n"
      "with open(sys.argv[1], 'rb') as f:\n"
      "    for b in iter(lambda: f.read(4 << 20), b''):\n"
      "        h.update(b)\n"
      "print(h.hexdigest())\n";
  std::string command = "if command -v python3 >/dev/null; then python3 -c " + quote(script) + " " + quote(path) +
                        "; else sha256sum -- " + quote(path) + "; fi";
  TRY_ASSIGN(auto r, core::ssh_exec(session, command, "", hash_timeout(size)));
  if (r.exit_status == 127)
    return fail(ErrorCode::not_found, "the pod has neither python3 nor sha256sum", "install coreutils on the pod");
  if (r.exit_status != 0 || r.out.size() < 64)
    return fail(ErrorCode::remote, "hashing " + path + " failed on the pod: " + r.err);
  return r.out.substr(0, 64);
}

// The local file's first `length` bytes through `sha`.
core::Status hash_prefix(int fd, std::int64_t length, Sha256& sha) {
  std::vector<char> buf(1 << 20);
  for (std::int64_t at = 0; at < length;) {
    auto want = static_cast<std::size_t>(std::min<std::int64_t>(static_cast<std::int64_t>(buf.size()), length - at));
    ssize_t n = ::pread(fd, buf.data(), want, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(ErrorCode::io, std::string("reading the local file: ") + (n ? std::strerror(errno) : "it shrank"));
    sha.update(buf.data(), static_cast<std::size_t>(n));
    at += n;
  }
  return {};
}

struct LocalFile {
  int fd = -1;
  std::int64_t size = 0;
  ~LocalFile() {
    if (fd >= 0) ::close(fd);
  }
};

// The pod's folder for the push, made if missing; refused when it resolves outside the root.
core::Result<std::string> pod_folder(core::Sftp& sftp, const PushRequest& req) {
  auto root = sftp.realpath(req.root);
  if (!root) {
    if (root.error().code != ErrorCode::not_found) return fail(root.error());
    return fail(ErrorCode::not_found, "the models root " + req.root + " does not exist on the pod",
                "pass --models-root, or check the volume is mounted (autopod ssh POD -- ls /workspace)");
  }
  std::string dir = *root + "/" + req.folder;
  TRY(sftp.mkdir(dir));
  TRY_ASSIGN(auto real, sftp.realpath(dir));
  if (real != dir)
    return fail(ErrorCode::invalid_argument,
                req.folder + " on the pod leads to " + real + ", outside the models root " + *root,
                "replace the symlink " + dir + " with a directory, or push into another folder");
  return dir;
}

// Writes the placed-file record beside `dest`: a temp file renamed over the old record.
core::Status write_pod_record(core::Sftp& sftp, const std::string& dest, const PlacedRecord& record) {
  std::string final_path = dest + ".autopod.json";
  std::string tmp = dest + ".autopod.json.tmp-" + std::to_string(::getpid());
  {
    TRY_ASSIGN(auto f, sftp.open(tmp, core::SftpOpen::truncate));
    TRY(f->write_at(0, record_text(record)));
  }
  TRY(sftp.unlink(final_path));  // SFTP v3 never renames over an existing file
  return sftp.rename(tmp, final_path);
}

// The destination's size and mtime in nanoseconds, as the pod-side listing reads them.
core::Result<std::pair<std::int64_t, std::int64_t>> pod_size_mtime(core::SshSession& session, const std::string& path) {
  TRY_ASSIGN(auto r, core::ssh_exec(session, "stat -c '%s %.9Y' -- " + quote(path), "", 30s));
  long long size = 0, secs = 0, nanos = 0;
  if (r.exit_status != 0 || std::sscanf(r.out.c_str(), "%lld %lld.%lld", &size, &secs, &nanos) != 3)
    return fail(ErrorCode::remote, "stat " + path + " failed on the pod: " + r.err + r.out);
  return std::make_pair(static_cast<std::int64_t>(size), static_cast<std::int64_t>(secs * 1'000'000'000LL + nanos));
}

}  // namespace

std::string push_partial_name(const std::string& name, std::int64_t size) {
  char hex[24];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(size));
  return "." + name + ".autopod-part-" + hex;
}

core::Result<PushResult> push_file(core::SshSession& session, const PushRequest& request,
                                   const std::function<void(const PushProgress&)>& progress) {
  PushRequest req = request;
  if (req.name.empty()) req.name = req.local.filename().string();
  TRY(check_placement(req.folder, req.name));
  LocalFile local;
  local.fd = ::open(req.local.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (local.fd < 0 || ::fstat(local.fd, &st) != 0 || !S_ISREG(st.st_mode))
    return fail(local.fd < 0 && errno == ENOENT ? ErrorCode::not_found : ErrorCode::invalid_argument,
                req.local.string() + " is not a readable regular file", "give the path of a model file");
  local.size = st.st_size;
  ::posix_fadvise(local.fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  TRY_ASSIGN(auto sftp, core::Sftp::start(session));
  TRY_ASSIGN(auto dir, pod_folder(*sftp, req));
  PushResult result;
  result.path = dir + "/" + req.name;
  result.size = local.size;
  std::string part = dir + "/" + push_partial_name(req.name, local.size);
  auto report = [&](PushPhase phase, std::int64_t done) {
    if (progress) progress(PushProgress{phase, done, local.size});
  };
  Sha256 sha;
  std::int64_t offset = 0;
  if (auto existing = sftp->lstat(result.path); existing) {
    if (!existing->is_regular() || existing->size != local.size)
      return fail(ErrorCode::conflict, result.path + " already exists on the pod (another file)",
                  "choose another --name, or remove it first: autopod ssh POD -- rm " + quote(result.path));
    report(PushPhase::verifying, 0);
    TRY(hash_prefix(local.fd, local.size, sha));
    std::string mine = sha.hex();
    TRY_ASSIGN(auto theirs, pod_sha256(session, result.path, local.size));
    if (theirs != mine)
      return fail(ErrorCode::conflict, result.path + " already exists on the pod with other bytes",
                  "choose another --name, or remove it first: autopod ssh POD -- rm " + quote(result.path));
    result.sha256 = mine, result.already_there = true;
  } else if (existing.error().code != ErrorCode::not_found) {
    return fail(existing.error());
  } else if (auto partial = sftp->stat(part); partial && partial->size > 0 && partial->size <= local.size) {
    report(PushPhase::checking, 0);
    TRY(hash_prefix(local.fd, partial->size, sha));
    Sha256 prefix_copy = sha.copy();
    TRY_ASSIGN(auto theirs, pod_sha256(session, part, partial->size));
    if (theirs == prefix_copy.hex()) {
      offset = partial->size;
    } else {
      core::logger("models")->warn("partial file {} differs from {}: sending it again", part, req.local.string());
      sha = Sha256();
      result.restarted = true;
      TRY(sftp->unlink(part));
    }
  } else if (partial) {
    TRY(sftp->unlink(part));  // longer than the file: not ours to resume
    result.restarted = true;
  }

  if (!result.already_there) {
    result.resumed_from = offset;
    {
      TRY_ASSIGN(auto f, sftp->open(part, core::SftpOpen::write));
      report(PushPhase::sending, offset);
      TRY(f->copy_from(
          local.fd, offset, local.size - offset, offset,
          [&](const char* p, std::size_t n) { sha.update(p, n); },
          [&](std::int64_t done) {
            report(PushPhase::sending, offset + done);
            return true;
          }));
      if (auto synced = f->fsync(); !synced && synced.error().code != ErrorCode::unsupported) return fail(synced.error());
    }
    result.sha256 = sha.hex();
    report(PushPhase::verifying, 0);
    TRY_ASSIGN(auto theirs, pod_sha256(session, part, local.size));
    if (theirs != result.sha256) {
      (void)sftp->unlink(part);
      return fail(ErrorCode::protocol,
                  "sha256 differs after sending " + req.name + ": " + result.sha256 + " here, " + theirs + " on the pod",
                  "the partial file was removed; run the push again");
    }
    TRY(sftp->rename(part, result.path));
  }
  TRY_ASSIGN(auto size_mtime, pod_size_mtime(session, result.path));
  PlacedRecord record;
  record.source = "push:" + req.local.filename().string();
  record.folder = req.folder, record.name = req.name, record.sha256 = result.sha256;
  record.size = size_mtime.first, record.mtime_ns = size_mtime.second;
  TRY(write_pod_record(*sftp, result.path, record));
  report(PushPhase::verifying, local.size);
  return result;
}

}  // namespace autopod::models
