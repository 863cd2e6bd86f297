// One ranged GET into a file at its offset (see range_fetch.hpp).

#include "models/range_fetch.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/text.hpp"
#include "models/internal.hpp"

namespace autopod::models {
namespace {

struct Transfer {
  const RangeRequest* request = nullptr;
  int fd = -1;
  const std::atomic<bool>* stop = nullptr;
  const std::function<void(std::int64_t)>* on_bytes = nullptr;
  CURL* curl = nullptr;
  std::string content_range;
  std::string content_length;
  std::string retry_after;
  bool checked = false;
  std::int64_t pos = 0;
  RangeResult result;
  curl_off_t last_seen = -1;
  std::chrono::steady_clock::time_point last_change = std::chrono::steady_clock::now();
  bool stalled = false;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    t->content_range.clear(), t->content_length.clear(), t->retry_after.clear();
    return size * n;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = core::lowercase(line.substr(0, colon));
  std::string value = line.substr(colon + 1);
  auto first = value.find_first_not_of(" \t");
  auto last = value.find_last_not_of(" \t\r\n");
  value = first == std::string::npos ? "" : value.substr(first, last - first + 1);
  if (name == "content-range") t->content_range = value;
  if (name == "content-length") t->content_length = value;
  if (name == "retry-after") t->retry_after = value;
  return size * n;
}

// Decides, before the first byte is written, whether this answer may be written at all.
bool accept_answer(Transfer* t) {
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  auto& r = t->result;
  r.status = static_cast<int>(status);
  const RangeRequest& q = *t->request;
  if (status == 206 && q.use_range) {
    std::int64_t first = 0, last = 0, total = -1;
    if (!parse_content_range(t->content_range, first, last, total) || first != q.first ||
        (q.last >= 0 && last != q.last)) {
      r.outcome = RangeOutcome::bad_answer;
      r.detail = "asked bytes " + std::to_string(q.first) + "-, got Content-Range '" +
                 t->content_range + "'";
      return false;
    }
    r.total = total;
    return true;
  }
  if (status == 200) {
    if (!t->content_length.empty()) r.total = std::stoll(t->content_length);
    if (q.use_range) {
      r.outcome = RangeOutcome::ignored_range;  // never append a whole body at an offset
      return false;
    }
    return true;
  }
  r.outcome = status == 416 ? RangeOutcome::not_satisfiable
              : (status == 401 || status == 403 || status == 410) ? RangeOutcome::expired
                                                                  : RangeOutcome::http_error;
  if (!t->retry_after.empty() && std::isdigit(static_cast<unsigned char>(t->retry_after[0])))
    r.retry_after_secs = std::stoi(t->retry_after);
  return false;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (!t->checked) {
    t->checked = true;
    if (!accept_answer(t)) return 0;
  }
  if (t->result.outcome != RangeOutcome::complete) return 0;
  std::int64_t len = static_cast<std::int64_t>(size * n);
  const RangeRequest& q = *t->request;
  if (q.last >= 0 && t->pos + len > q.last + 1) {
    t->result.outcome = RangeOutcome::bad_answer;
    t->result.detail = "more bytes than the range asked for";
    return 0;
  }
  for (std::int64_t off = 0; off < len;) {
    ssize_t w = ::pwrite(t->fd, data + off, static_cast<size_t>(len - off), t->pos + off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      t->result.outcome = RangeOutcome::write_failed;
      t->result.detail = std::strerror(errno);
      return 0;
    }
    off += w;
  }
  t->pos += len;
  t->result.written += len;
  (*t->on_bytes)(len);
  return size * n;
}

// libcurl's LOW_SPEED_TIME judges a moving average over several seconds, which hides a stall
// that follows a fast start; this counts the time since the last byte instead.
int on_progress(void* user, curl_off_t, curl_off_t now_bytes, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (t->stop->load()) return 1;
  auto now = std::chrono::steady_clock::now();
  if (now_bytes != t->last_seen) {
    t->last_seen = now_bytes;
    t->last_change = now;
  } else if (now - t->last_change > t->request->stall_timeout) {
    t->stalled = true;
    return 1;
  }
  return 0;
}

}  // namespace

RangeFetcher::RangeFetcher() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  m_curl = curl_easy_init();
  ASSERT(m_curl != nullptr);
}

RangeFetcher::~RangeFetcher() { curl_easy_cleanup(m_curl); }

RangeResult RangeFetcher::fetch(const RangeRequest& q, int fd, const std::atomic<bool>& stop,
                                const std::function<void(std::int64_t)>& on_bytes) {
  CURL* c = m_curl;
  curl_easy_reset(c);  // keeps the connection cache: the next range reuses the connection
  Transfer t;
  t.request = &q, t.fd = fd, t.stop = &stop, t.on_bytes = &on_bytes, t.curl = c;
  t.pos = q.first;
  curl_easy_setopt(c, CURLOPT_URL, q.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
  curl_easy_setopt(c, CURLOPT_USERAGENT, q.user_agent.c_str());
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  // No FOLLOWLOCATION: the URL is already the final one, and a token set for it (the origin's
  // host only) can never travel on to another host.
  curl_slist* headers = curl_slist_append(nullptr, "Accept-Encoding: identity");
  std::string auth;
  if (!q.bearer.empty()) {
    auth = "Authorization: Bearer " + q.bearer;
    headers = curl_slist_append(headers, auth.c_str());
  }
  std::string range;
  if (q.use_range) {
    range = "Range: bytes=" + std::to_string(q.first) + "-" +
            (q.last >= 0 ? std::to_string(q.last) : "");
    headers = curl_slist_append(headers, range.c_str());
    if (!q.validator.empty())
      headers = curl_slist_append(headers, ("If-Range: " + q.validator).c_str());
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  RangeResult& r = t.result;
  if (!t.checked && rc == CURLE_OK) accept_answer(&t);  // an empty body
  if (r.outcome != RangeOutcome::complete) return r;
  if (t.stalled) {
    r.outcome = RangeOutcome::short_body;
    r.detail = "no byte for " + std::to_string(q.stall_timeout.count()) + " ms (stalled)";
    return r;
  }
  if (stop.load()) {
    r.outcome = RangeOutcome::stopped;
    return r;
  }
  if (rc != CURLE_OK) {
    r.outcome = RangeOutcome::short_body;
    r.detail = curl_easy_strerror(rc);
    return r;
  }
  if (q.last >= 0 && t.pos <= q.last) {
    r.outcome = RangeOutcome::short_body;
    r.detail = "the answer ended early";
  }
  return r;
}

}  // namespace autopod::models
