// The connections of one download and its in-order hasher (see transfer_engine.hpp).

#include <unistd.h>

#include <thread>
#include <vector>

#include "core/backoff.hpp"
#include "core/log.hpp"
#include "models/range_fetch.hpp"
#include "models/transfer_engine.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;

void sleep_unless_stopped(Engine& e, std::chrono::milliseconds d) {
  std::unique_lock lock(e.mu);
  e.cv.wait_for(lock, d, [&] { return e.stop.load(); });
}

// A fresh signed URL, fetched once however many connections saw the old one expire.
bool refresh_url(Engine& e, int seen_generation) {
  std::lock_guard lock(e.mu);
  if (e.url_generation != seen_generation) return true;
  if (!e.opt.reresolve) return false;
  auto fresh = e.opt.reresolve();
  if (!fresh) {
    e.error = fresh.error();
    e.stop = true;
    e.cv.notify_all();
    return false;
  }
  if (fresh->size != e.state.size || (!fresh->sha256.empty() && fresh->sha256 != e.state.sha256))
    return false;
  core::logger("models")->info("signed url expired; re-resolved {}", e.state.source);
  e.url = fresh->url;
  ++e.url_generation;
  return true;
}

void mark_done(Engine& e, std::size_t idx) {
  std::lock_guard lock(e.mu);
  e.state.done[idx] = true;
  auto now = std::chrono::steady_clock::now();
  if (now - e.last_save >= std::chrono::seconds(1)) {
    // The bytes are durable before the record says so.
    ::fdatasync(e.fd);
    if (auto st = e.claim.save(e.state); !st)
      core::logger("models")->warn("cannot save progress: {}", st.error().message);
    e.last_save = now;
  }
  e.cv.notify_all();
}

// Fetches chunk `idx` completely, retrying the missing part alone; false when it gave up.
bool run_chunk(Engine& e, RangeFetcher& fetcher, std::size_t idx) {
  const std::int64_t first = e.first_byte(idx), last = e.last_byte(idx);
  std::int64_t pos = first;
  core::Backoff backoff(e.opt.backoff);
  int failures = 0;
  auto on_bytes = [&](std::int64_t n) {
    e.on_disk += n;
    e.fetched += n;
  };
  while (!e.stop) {
    int generation;
    RangeRequest q;
    {
      std::lock_guard lock(e.mu);
      generation = e.url_generation;
      q = RangeRequest{e.url, pos, last, e.ranged, e.state.validator, e.opt.user_agent,
                       e.opt.stall_timeout, same_origin(e.url, e.origin) ? e.opt.token : ""};
    }
    RangeResult r = fetcher.fetch(q, e.fd, e.stop, on_bytes);
    pos += r.written;
    if (r.written > 0) failures = 0, backoff.reset();
    // Every byte of the range arrived even if the answer then broke (a Content-Length that
    // announced more than was sent): the range is done.
    if (e.ranged && last >= 0 && pos > last) return true;
    std::string where = "bytes " + std::to_string(pos) + "- of " + e.state.source;
    switch (r.outcome) {
      case RangeOutcome::complete:
        if (last < 0) e.learned_size = pos;
        return true;
      case RangeOutcome::stopped:
        return false;
      case RangeOutcome::ignored_range: {
        std::lock_guard lock(e.mu);
        e.restart = true;
        e.stop = true;
        e.cv.notify_all();
        return false;
      }
      case RangeOutcome::not_satisfiable:
        e.fail(core::make_error(ErrorCode::protocol,
                                "storage answered 416 for " + where +
                                    ": the file there is smaller than the expected " +
                                    std::to_string(e.state.size) + " bytes",
                                "the file changed at the source; sync again to start afresh"),
               true);
        return false;
      case RangeOutcome::write_failed:
        e.fail(core::make_error(ErrorCode::io, "cannot write the partial file: " + r.detail,
                                "check the volume's free space and permissions"));
        return false;
      case RangeOutcome::expired:
        if (++failures <= e.opt.range_attempts && refresh_url(e, generation)) continue;
        if (!e.stop)
          e.fail(core::make_error(ErrorCode::auth,
                                  "storage refused " + where + " (http " +
                                      std::to_string(r.status) + ") and re-resolving did not help",
                                  "sync again; if it persists the source changed or needs a token"));
        return false;
      case RangeOutcome::http_error:
        if (r.status != 429 && r.status < 500) {
          e.fail(core::make_error(ErrorCode::remote, "storage answered http " +
                                                         std::to_string(r.status) + " for " + where));
          return false;
        }
        break;
      case RangeOutcome::short_body:
      case RangeOutcome::bad_answer:
        break;
    }
    if (!e.ranged) {  // a plain stream cannot continue where it broke
      e.on_disk -= pos - first;
      pos = first;
    }
    if (++failures >= e.opt.range_attempts) {
      e.fail(core::make_error(ErrorCode::network,
                              "gave up on " + where + " after " + std::to_string(failures) +
                                  " attempts: " + (r.detail.empty() ? "http " + std::to_string(r.status) : r.detail),
                              "check the network and sync again: finished ranges are kept"));
      return false;
    }
    auto delay = r.retry_after_secs >= 0 ? std::chrono::milliseconds(r.retry_after_secs * 1000L)
                                         : backoff.next();
    core::logger("models")->warn("{}: {} (retry {}/{} in {} ms)", where,
                                 r.detail.empty() ? "http " + std::to_string(r.status) : r.detail,
                                 failures, e.opt.range_attempts, delay.count());
    sleep_unless_stopped(e, delay);
  }
  return false;
}

}  // namespace

void Engine::fail(core::Error e, bool discard_partial) {
  std::lock_guard lock(mu);
  if (!error) error = std::move(e);
  discard = discard || discard_partial;
  stop = true;
  cv.notify_all();
}

void run_worker(Engine& e) {
  RangeFetcher fetcher;
  for (;;) {
    std::size_t idx;
    {
      std::lock_guard lock(e.mu);
      while (e.next_chunk < e.chunks() && e.state.done[e.next_chunk]) ++e.next_chunk;
      if (e.stop || e.next_chunk >= e.chunks()) break;
      idx = e.next_chunk++;
    }
    if (!run_chunk(e, fetcher, idx)) break;
    mark_done(e, idx);
  }
  std::lock_guard lock(e.mu);
  --e.running;
  e.cv.notify_all();
}

std::string hash_in_order(Engine& e) {
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  for (std::size_t idx = 0; idx < e.chunks(); ++idx) {
    {
      std::unique_lock lock(e.mu);
      e.cv.wait(lock, [&] { return e.state.done[idx] || e.stop || e.running == 0; });
      if (!e.state.done[idx]) return {};
    }
    std::int64_t pos = e.first_byte(idx);
    std::int64_t end = e.last_byte(idx) >= 0 ? e.last_byte(idx) + 1 : e.learned_size.load();
    while (pos < end) {
      auto want = static_cast<std::size_t>(std::min<std::int64_t>(buf.size(), end - pos));
      ssize_t n = ::pread(e.fd, buf.data(), want, pos);
      if (n <= 0) return {};
      sha.update(buf.data(), static_cast<std::size_t>(n));
      pos += n;
    }
  }
  return sha.hex();
}

}  // namespace autopod::models
