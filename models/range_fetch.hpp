#pragma once
// Internal to models/: one ranged GET with libcurl, written at its offset with pwrite. The
// status and Content-Range are checked before a byte is written, which core::HttpTransport's
// sink cannot do (it sees no headers).

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace autopod::models {

struct RangeRequest {
  std::string url;
  std::int64_t first = 0;
  std::int64_t last = -1;  // inclusive; -1: to the end
  bool use_range = true;   // false: a plain GET whose 200 body is the whole file
  std::string validator;   // sent as If-Range
  std::string user_agent;
  std::chrono::milliseconds stall_timeout{30000};
  // Sent as "Authorization: Bearer" when set: the caller sets it only for the origin's host
  // (same_origin), never for storage. Redirects are never followed here.
  std::string bearer;
};

enum class RangeOutcome {
  complete,         // every byte of the range arrived
  short_body,       // fewer bytes than asked (cut, stalled, lying Content-Length): retry the rest
  ignored_range,    // 200 to a Range (or If-Range did not match): restart from zero, never append
  expired,          // 401/403/410 from storage: the signed URL expired
  not_satisfiable,  // 416
  http_error,       // other statuses; retryable when 5xx or 429
  stopped,          // the stop flag was raised
  write_failed,
  bad_answer,       // a 206 at another offset, or more bytes than asked
};

struct RangeResult {
  RangeOutcome outcome = RangeOutcome::complete;
  std::int64_t written = 0;
  int status = 0;
  int retry_after_secs = -1;
  std::int64_t total = -1;  // from Content-Range, or Content-Length of a 200
  std::string detail;
};

// One connection, reused (keep-alive) across fetches. Not thread-safe: one per worker.
class RangeFetcher {
 public:
  RangeFetcher();
  ~RangeFetcher();
  RangeFetcher(const RangeFetcher&) = delete;
  RangeFetcher& operator=(const RangeFetcher&) = delete;

  // Writes the answer's bytes at their offsets in `fd`; `on_bytes` is told of each write.
  RangeResult fetch(const RangeRequest& request, int fd, const std::atomic<bool>& stop,
                    const std::function<void(std::int64_t)>& on_bytes);

 private:
  CURL* m_curl;
};

}  // namespace autopod::models
