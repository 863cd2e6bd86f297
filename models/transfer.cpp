// download(): claim, resume or start, fetch over several connections, verify, rename.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <thread>

#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/random.hpp"
#include "models/transfer_engine.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using core::fail;

std::int64_t statvfs_free(const std::filesystem::path& dir) {
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0) return -1;
  return static_cast<std::int64_t>(v.f_bavail) * static_cast<std::int64_t>(v.f_frsize);
}

std::string gib(std::int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return buf;
}

// The download's shape: one chunk for small files, servers without ranges and unknown sizes.
PartState fresh_state(const ResolvedFile& file, const std::filesystem::path& dest,
                      const TransferOptions& opt) {
  PartState s;
  s.source = file.source;
  s.size = file.size;
  s.sha256 = file.sha256;
  s.validator = file.validator;
  s.partial = dest.filename().string() + "." + core::random_hex(8) + ".part";
  bool multi = file.ranges && file.size >= opt.single_stream_below && opt.connections > 1;
  s.chunk_bytes = multi ? std::max<std::int64_t>(opt.chunk_bytes, 1 << 20)
                        : std::max<std::int64_t>(file.size, 1);
  std::size_t n = file.size > 0 ? static_cast<std::size_t>((file.size + s.chunk_bytes - 1) / s.chunk_bytes) : 1;
  s.done.assign(n, false);
  return s;
}

void report(Engine& e, std::int64_t& last_fetched, std::chrono::steady_clock::time_point& last_t,
            double& speed, int connections) {
  if (!e.opt.on_progress) return;
  auto now = std::chrono::steady_clock::now();
  double secs = std::chrono::duration<double>(now - last_t).count();
  if (secs < 0.2) return;
  std::int64_t fetched = e.fetched.load();
  double instant = static_cast<double>(fetched - last_fetched) / secs;
  speed = speed == 0 ? instant : 0.7 * speed + 0.3 * instant;
  last_fetched = fetched, last_t = now;
  e.opt.on_progress(Progress{e.on_disk.load(), e.state.size, speed, connections});
}

// Runs the connections and the hasher until done, failed or stopped; the sha256 when complete.
std::string run_connections(Engine& e, int connections, StopKind& stop_kind) {
  e.stop = false;
  e.next_chunk = 0;
  e.running = connections;
  std::vector<std::thread> workers;
  auto hashed = std::async(std::launch::async, [&] { return hash_in_order(e); });
  for (int i = 0; i < connections; ++i) workers.emplace_back([&] { run_worker(e); });
  std::int64_t last_fetched = 0;
  auto last_t = std::chrono::steady_clock::now();
  double speed = 0;
  for (;;) {
    {
      std::unique_lock lock(e.mu);
      if (e.cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return e.running == 0; })) break;
    }
    if (e.opt.should_stop && stop_kind == StopKind::none) {
      stop_kind = e.opt.should_stop();
      if (stop_kind != StopKind::none) {
        std::lock_guard lock(e.mu);
        e.stop = true;
        e.cv.notify_all();
      }
    }
    report(e, last_fetched, last_t, speed, connections);
  }
  for (auto& w : workers) w.join();
  {
    std::lock_guard lock(e.mu);
    e.cv.notify_all();
  }
  return hashed.get();
}

core::Status finish(Engine& e, const std::filesystem::path& partial, const std::filesystem::path& dest,
                    const std::string& actual) {
  struct stat st {};
  ::fstat(e.fd, &st);
  std::int64_t size = e.state.size >= 0 ? e.state.size : e.learned_size.load();
  if (size < 0 || st.st_size != size) {
    ::ftruncate(e.fd, size >= 0 ? size : st.st_size);
    if (e.state.size >= 0 && st.st_size != e.state.size)
      return fail(ErrorCode::protocol, dest.filename().string() + " should be " +
                                           std::to_string(size) + " bytes but has " +
                                           std::to_string(st.st_size));
  }
  if (!e.state.sha256.empty() && actual != e.state.sha256)
    return fail(ErrorCode::protocol,
                "sha256 mismatch for " + dest.filename().string() + ": expected " +
                    e.state.sha256 + ", got " + actual + "; the partial file was deleted",
                "sync again; if it repeats, the source serves other bytes than it advertises");
  if (::fsync(e.fd) != 0 || ::rename(partial.c_str(), dest.c_str()) != 0)
    return fail(ErrorCode::io, "cannot move " + partial.string() + " into place: " + std::strerror(errno));
  int dir = ::open(dest.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) ::fsync(dir), ::close(dir);
  return {};
}

}  // namespace

core::Result<TransferResult> download(const ResolvedFile& file, const std::filesystem::path& dest,
                                      const TransferOptions& opt) {
  auto dir = dest.parent_path();
  TRY(core::ensure_dir(dir, 0755));
  PartState previous;
  TRY_ASSIGN(auto claim, Claim::acquire(dest, fresh_state(file, dest, opt), &previous));
  Engine e(opt, claim);
  e.state = fresh_state(file, dest, opt);
  e.url = file.url;
  e.origin = file.origin;
  e.ranged = file.ranges && file.size > 0;
  bool resumed = !previous.partial.empty() && previous.same_download(e.state) && e.ranged &&
                 std::filesystem::exists(dir / previous.partial);
  if (resumed) {
    e.state.done = previous.done;
    e.state.partial = previous.partial;
  } else if (!previous.partial.empty()) {
    std::filesystem::remove(dir / previous.partial);  // another file's bytes: useless
  }
  auto partial = dir / e.state.partial;
  std::int64_t have = resumed ? e.state.done_bytes() : 0;
  std::int64_t need = file.size > 0 ? file.size - have : 0;
  std::int64_t free = opt.free_bytes ? opt.free_bytes(dir) : statvfs_free(dir);
  if (need > 0 && free >= 0 && free < need) {
    resumed ? (void)claim.park(e.state) : claim.release();
    return fail(ErrorCode::io,
                "not enough space for " + dest.filename().string() + " in " + dir.string() +
                    ": it needs " + gib(need) + " (" + std::to_string(need) + " bytes), " +
                    gib(free) + " are free",
                "free space on the volume or sync fewer models");
  }
  e.fd = ::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (e.fd < 0) {
    claim.release();
    return fail(ErrorCode::io, "cannot create " + partial.string() + ": " + std::strerror(errno));
  }
  if (file.size > 0 && !resumed) {
    if (::ftruncate(e.fd, file.size) != 0) {
      ::close(e.fd);
      claim.release();
      return fail(ErrorCode::io, "cannot size " + partial.string() + ": " + std::strerror(errno));
    }
  }
  TRY(claim.save(e.state));
  e.on_disk = have;
  int connections = e.chunks() > 1 ? std::min<int>(opt.connections, static_cast<int>(e.chunks())) : 1;
  StopKind stop_kind = StopKind::none;
  std::string actual = run_connections(e, connections, stop_kind);
  if (e.restart && !e.error && stop_kind == StopKind::none) {
    // 200 to a Range: the server ignores ranges (or the validator changed). Truncate and
    // start again with one plain stream; never append that body to what is there.
    core::logger("models")->warn("{} ignored a Range request; starting again from byte 0", file.source);
    ::ftruncate(e.fd, 0);
    if (file.size > 0) ::ftruncate(e.fd, file.size);
    e.ranged = false;
    e.state.chunk_bytes = std::max<std::int64_t>(file.size, 1);
    e.state.done.assign(1, false);
    e.on_disk = 0;
    e.restart = false;
    actual = run_connections(e, 1, stop_kind);
    if (e.restart) e.fail(core::make_error(ErrorCode::protocol, "storage ignored ranges twice"), true);
  }
  auto cleanup = [&](bool keep) {
    if (keep && e.ranged) {
      ::fdatasync(e.fd);
      ::close(e.fd);
      (void)claim.park(e.state);
      return;
    }
    ::close(e.fd);
    std::filesystem::remove(partial);
    claim.release();
  };
  if (e.error) {
    cleanup(!e.discard);
    return fail(*e.error);
  }
  if (stop_kind != StopKind::none) {
    cleanup(stop_kind == StopKind::pause);
    return fail(ErrorCode::cancelled, file.source + (stop_kind == StopKind::pause ? " paused" : " cancelled"));
  }
  if (auto st = finish(e, partial, dest, actual); !st) {
    cleanup(false);
    return fail(st.error());
  }
  ::close(e.fd);
  claim.release();
  std::int64_t size = file.size >= 0 ? file.size : e.learned_size.load();
  core::logger("models")->info("placed {} ({} bytes, sha256 {})", dest.string(), size, actual);
  return TransferResult{dest, size, actual, e.fetched.load(), resumed};
}

}  // namespace autopod::models
