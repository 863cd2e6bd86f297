// models::push_file: SFTP upload with resume and sha256 on both ends (models/push.hpp).

#include "models/push.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
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
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Hashing on the pod reads 0.5-1.2 GB/s; allow a slow volume 50 MB/s, and never less than a minute.
std::chrono::milliseconds hash_timeout(std::int64_t bytes) {
  return std::max<std::chrono::milliseconds>(60s, std::chrono::milliseconds(bytes / 50'000));
}

// The sha256 of `path` on the pod, over exec: python3's hashlib (OpenSSL: 1.2 GB/s here, where
// coreutils 9.1's sha256sum does 0.45), else sha256sum. Both print the hex digest first.
core::Result<std::string> pod_sha256(core::SshSession& session,
                                     const std::string& path,
                                     std::int64_t size) {
  const std::string script =
      "import hashlib, sys\n"
      "h = hashlib.sha256()\n"
      "with open(sys.argv[1], 'rb') as f:\n"
      "    for b in iter(lambda: f.read(4 << 20), b''):\n"
      "        h.update(b)\n"
      "print(h.hexdigest())\n";
  std::string command = "if command -v python3 >/dev/null; then python3 -c " + quote(script) + " " +
                        quote(path) + "; else sha256sum -- " + quote(path) + "; fi";
  TRY_ASSIGN(auto r, core::ssh_exec(session, command, "", hash_timeout(size)));
  if (r.exit_status == 127)
    return fail(ErrorCode::not_found, "the pod has neither python3 nor sha256sum",
                "install coreutils on the pod");
  if (r.exit_status != 0 || r.out.size() < 64)
    return fail(ErrorCode::remote, "hashing " + path + " failed on the pod: " + r.err);
  return r.out.substr(0, 64);
}

// A pod-side sha256 that follows the partial file `path` as the upload makes it grow, so the
// pod hashes while the bytes arrive instead of after them (python3's hashlib; exit 127 without
// it). It reads what is there, waits (50 ms at a time) on its stdin when it has caught up, and
// once its stdin ends (every write acknowledged) reads to the end and prints "HEX SIZE". Started
// after the upload opened the file; the upload only ever appends, so whatever it read is final.
core::Result<std::unique_ptr<core::SshCommand>> follow_sha256(core::SshSession& session,
                                                               const std::string& path) {
  const std::string script =
      "import hashlib, select, sys\n"
      "h, n, last = hashlib.sha256(), 0, False\n"
      "with open(sys.argv[1], 'rb', buffering=0) as f:\n"
      "    while True:\n"
      "        b = f.read(4 << 20)\n"
      "        if b:\n"
      "            h.update(b)\n"
      "            n += len(b)\n"
      "        elif last:\n"
      "            break\n"
      "        else:\n"
      "            last = bool(select.select([sys.stdin], [], [], 0.05)[0])\n"
      "print(h.hexdigest(), n)\n";
  return core::SshCommand::start(session,
                                 "command -v python3 >/dev/null || exit 127; exec python3 -c " +
                                     quote(script) + " " + quote(path),
                                 30s);
}

// What the follower hashed: its hex digest when it read exactly `size` bytes; empty when it
// could not run or gave something else (the caller then hashes the file after the upload).
core::Result<std::string> followed_sha256(core::SshCommand& follower,
                                          const std::string& path,
                                          std::int64_t size) {
  TRY_ASSIGN(auto r, follower.finish("", hash_timeout(size)));
  long long hashed = -1;
  char hex[65] = {};
  if (r.exit_status == 0 && std::sscanf(r.out.c_str(), "%64s %lld", hex, &hashed) == 2 &&
      hashed == size && std::strlen(hex) == 64)
    return std::string(hex);
  core::logger("models")->warn("following {} on the pod gave '{}' (exit {}, {}): hashing it again",
                               path, r.out, r.exit_status, r.err);
  return std::string();
}

// The local file's first `length` bytes through `sha`.
core::Status hash_prefix(int fd, std::int64_t length, Sha256& sha) {
  std::vector<char> buf(1 << 20);
  for (std::int64_t at = 0; at < length;) {
    auto want = static_cast<std::size_t>(
        std::min<std::int64_t>(static_cast<std::int64_t>(buf.size()), length - at));
    ssize_t n = ::pread(fd, buf.data(), want, at);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return fail(ErrorCode::io, std::string("reading the local file: ") +
                                     (n ? std::strerror(errno) : "it shrank"));
    sha.update(buf.data(), static_cast<std::size_t>(n));
    at += n;
  }
  return {};
}

struct LocalFile {
  int fd = -1;
  std::int64_t size = 0;
  ~LocalFile() {
    if (fd >= 0)
      ::close(fd);
  }
};

// The pod's folder for the push, made if missing; refused when it resolves outside the root.
core::Result<std::string> pod_folder(core::Sftp& sftp, const PushRequest& req) {
  auto root = sftp.realpath(req.root);
  if (!root) {
    if (root.error().code != ErrorCode::not_found)
      return fail(root.error());
    return fail(
        ErrorCode::not_found, "the models root " + req.root + " does not exist on the pod",
        "pass --models-root, or check the volume is mounted (autopod ssh POD -- ls /workspace)");
  }
  std::string dir = *root + "/" + req.folder;
  TRY(sftp.mkdir(dir));
  TRY_ASSIGN(auto real, sftp.realpath(dir));
  // As the pod-side program checks it: the folder may be a symlink, to a folder of the root.
  if (real.substr(0, real.rfind('/')) != *root)
    return fail(ErrorCode::invalid_argument,
                req.folder + " on the pod leads to " + real + ", outside the models root " + *root,
                "replace the symlink " + dir + " with a directory, or push into another folder");
  return real;
}

// Writes the placed-file record beside `dest`: a temp file renamed over the old record.
core::Status write_pod_record(core::Sftp& sftp,
                              const std::string& dest,
                              const PlacedRecord& record) {
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
core::Result<std::pair<std::int64_t, std::int64_t>> pod_size_mtime(core::SshSession& session,
                                                                   const std::string& path) {
  TRY_ASSIGN(auto r, core::ssh_exec(session, "stat -c '%s %.9Y' -- " + quote(path), "", 30s));
  long long size = 0, secs = 0, nanos = 0;
  if (r.exit_status != 0 || std::sscanf(r.out.c_str(), "%lld %lld.%lld", &size, &secs, &nanos) != 3)
    return fail(ErrorCode::remote, "stat " + path + " failed on the pod: " + r.err + r.out);
  return std::make_pair(static_cast<std::int64_t>(size),
                        static_cast<std::int64_t>(secs * 1'000'000'000LL + nanos));
}

}  // namespace

std::string push_partial_name(const std::string& name, std::int64_t size) {
  char hex[24];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(size));
  return "." + name + ".autopod-part-" + hex;
}

namespace {

// One push's steps, sharing the session, the SFTP channel, the local file and the running hash.
struct Push {
  core::SshSession& session;
  core::Sftp& sftp;
  const PushRequest& req;
  const LocalFile& local;
  const std::function<void(const PushProgress&)>& progress;
  std::string part;
  Sha256 sha;
  PushResult result;

  void report(PushPhase phase, std::int64_t done) {
    if (progress)
      progress(PushProgress{phase, done, local.size});
  }
  core::Status refuse_existing(const std::string& why) {
    return fail(
        ErrorCode::conflict, result.path + " already exists on the pod (" + why + ")",
        "choose another --name, or remove it first: autopod ssh POD -- rm " + quote(result.path));
  }

  // Whether the destination already holds these bytes (then nothing is sent); a conflict when
  // it holds others.
  core::Result<bool> already_there() {
    auto existing = sftp.lstat(result.path);
    if (!existing && existing.error().code == ErrorCode::not_found)
      return false;
    if (!existing)
      return fail(existing.error());
    if (!existing->is_regular() || existing->size != local.size)
      return fail(refuse_existing("another file").error());
    report(PushPhase::verifying, 0);
    TRY(hash_prefix(local.fd, local.size, sha));
    result.sha256 = sha.hex();
    TRY_ASSIGN(auto theirs, pod_sha256(session, result.path, local.size));
    if (theirs != result.sha256)
      return fail(refuse_existing("other bytes").error());
    return true;
  }

  // Where sending starts: the partial file's size when its bytes hash as the local file's first
  // ones (the hash then goes on from there), else 0 with the partial file removed.
  core::Result<std::int64_t> resume_offset() {
    auto partial = sftp.stat(part);
    if (!partial)
      return partial.error().code == ErrorCode::not_found ? core::Result<std::int64_t>(0)
                                                          : fail(partial.error());
    if (partial->size > 0 && partial->size <= local.size) {
      report(PushPhase::checking, 0);
      TRY(hash_prefix(local.fd, partial->size, sha));
      TRY_ASSIGN(auto theirs, pod_sha256(session, part, partial->size));
      if (theirs == sha.copy().hex())
        return partial->size;
      core::logger("models")->warn("partial file {} differs from {}: sending it again", part,
                                   req.local.string());
      sha = Sha256();
    }
    result.restarted = partial->size > 0;
    TRY(sftp.unlink(part));
    return 0;
  }

  // Sends from `offset`, then compares the whole file's sha256 on both ends and renames it.
  core::Status send_and_place(std::int64_t offset) {
    result.resumed_from = offset;
    std::unique_ptr<core::SshCommand> follower;
    Sha256Worker hashing(std::move(sha));  // off the thread that encrypts and sends
    {
      TRY_ASSIGN(auto f, sftp.open(part, core::SftpOpen::write));
      auto started = follow_sha256(session, part);
      if (!started && started.error().code != ErrorCode::remote)
        return fail(started.error());
      if (started)
        follower = std::move(*started);
      report(PushPhase::sending, offset);
      TRY(f->copy_from(
          local.fd, offset, local.size - offset, offset,
          [&](const char* p, std::size_t n) { hashing.update(p, n); },
          [&](std::int64_t done) {
            report(PushPhase::sending, offset + done);
            return true;
          }));
      if (auto synced = f->fsync(); !synced && synced.error().code != ErrorCode::unsupported)
        return synced;
    }
    result.sha256 = hashing.hex();
    report(PushPhase::verifying, 0);
    std::string theirs;
    if (follower) {
      if (auto followed = followed_sha256(*follower, part, local.size))
        theirs = *followed;
      else  // the follower failed or timed out: hash from disk (fails too if the link is gone)
        core::logger("models")->info("pod-side hash follower: {}", followed.error().message);
    }
    if (theirs != result.sha256) {  // the follower could not run or saw other bytes: from disk
      TRY_ASSIGN(theirs, pod_sha256(session, part, local.size));
    }
    if (theirs != result.sha256) {
      (void)sftp.unlink(part);
      return fail(ErrorCode::protocol,
                  "sha256 differs after sending " + req.name + ": " + result.sha256 + " here, " +
                      theirs + " on the pod",
                  "the partial file was removed; run the push again");
    }
    return sftp.rename(part, result.path);
  }

  core::Status record() {
    TRY_ASSIGN(auto size_mtime, pod_size_mtime(session, result.path));
    PlacedRecord r;
    r.source = pushed_source(req.local.filename().string());
    r.folder = req.folder, r.name = req.name, r.sha256 = result.sha256;
    r.size = size_mtime.first, r.mtime_ns = size_mtime.second;
    return write_pod_record(sftp, result.path, r);
  }
};

}  // namespace

core::Result<PushResult> push_file(core::SshSession& session,
                                   const PushRequest& request,
                                   const std::function<void(const PushProgress&)>& progress) {
  PushRequest req = request;
  if (req.name.empty())
    req.name = req.local.filename().string();
  TRY(check_placement(req.folder, req.name));
  LocalFile local;
  local.fd = ::open(req.local.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (local.fd < 0 || ::fstat(local.fd, &st) != 0 || !S_ISREG(st.st_mode))
    return fail(
        local.fd < 0 && errno == ENOENT ? ErrorCode::not_found : ErrorCode::invalid_argument,
        req.local.string() + " is not a readable regular file", "give the path of a model file");
  local.size = st.st_size;
  ::posix_fadvise(local.fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  TRY_ASSIGN(auto sftp, core::Sftp::start(session));
  TRY_ASSIGN(auto dir, pod_folder(*sftp, req));
  Push push{session,  *sftp,       req,
            local,    progress,    dir + "/" + push_partial_name(req.name, local.size),
            Sha256(), PushResult()};
  push.result.path = dir + "/" + req.name;
  push.result.size = local.size;
  TRY_ASSIGN(push.result.already_there, push.already_there());
  if (!push.result.already_there) {
    TRY_ASSIGN(auto offset, push.resume_offset());
    TRY(push.send_and_place(offset));
  }
  TRY(push.record());
  push.report(PushPhase::verifying, local.size);
  return push.result;
}

}  // namespace autopod::models
