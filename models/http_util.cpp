// HTTP details every source shares: header parsing, retries, and the storage probe.

#include <algorithm>
#include <cctype>

#include "core/log.hpp"
#include "core/text.hpp"
#include "core/url.hpp"
#include "models/internal.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using core::fail;

std::string trim(std::string s) {
  auto first = s.find_first_not_of(" \t");
  auto last = s.find_last_not_of(" \t");
  return first == std::string::npos ? "" : s.substr(first, last - first + 1);
}

std::string last_component(std::string name) {
  auto slash = name.find_last_of("/\\");
  if (slash != std::string::npos) name = name.substr(slash + 1);
  bool control = std::any_of(name.begin(), name.end(),
                             [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (control || name.empty() || name == "." || name == ".." || name.find(':') == 1) return {};
  return name;
}

std::string resolve_location(const std::string& base, const std::string& location) {
  if (location.find("://") != std::string::npos) return location;
  auto url = core::parse_url(base);
  if (!url) return location;
  if (location.rfind("//", 0) == 0) return url->scheme + ":" + location;
  if (location.rfind('/', 0) == 0) return url->origin() + location;
  auto dir = url->path.substr(0, url->path.rfind('/') + 1);
  return url->origin() + dir + location;
}

}  // namespace

std::string content_disposition_name(const std::string& header) {
  std::string plain, extended;
  std::size_t i = 0;
  while (i < header.size()) {
    auto semi = header.find(';', i);
    // a quoted value may hold ';'
    auto quote = header.find('"', i);
    if (quote != std::string::npos && quote < semi) {
      auto close = header.find('"', quote + 1);
      semi = close == std::string::npos ? std::string::npos : header.find(';', close);
    }
    std::string part = trim(header.substr(i, semi == std::string::npos ? std::string::npos : semi - i));
    i = semi == std::string::npos ? header.size() : semi + 1;
    auto eq = part.find('=');
    if (eq == std::string::npos) continue;
    std::string key = core::lowercase(trim(part.substr(0, eq)));
    std::string value = trim(part.substr(eq + 1));
    if (key == "filename*") {
      // RFC 5987: charset'language'percent-encoded
      auto second = value.find('\'', value.find('\'') + 1);
      if (second != std::string::npos) extended = percent_decode(value.substr(second + 1));
    } else if (key == "filename") {
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      std::string unescaped;
      for (std::size_t k = 0; k < value.size(); ++k) {
        if (value[k] == '\\' && k + 1 < value.size()) ++k;
        unescaped += value[k];
      }
      plain = unescaped;
    }
  }
  return last_component(extended.empty() ? plain : extended);
}

std::string url_file_name(const std::string& text) {
  auto url = core::parse_url(text);
  if (!url) return {};
  auto slash = url->path.rfind('/');
  return last_component(percent_decode(url->path.substr(slash + 1)));
}

std::string strip_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  return etag;
}

bool same_origin(const std::string& a, const std::string& b) {
  auto x = core::parse_url(a);
  auto y = core::parse_url(b);
  return x && y && x->scheme == y->scheme && core::lowercase(x->host) == core::lowercase(y->host) &&
         x->port == y->port;
}

bool parse_content_range(const std::string& value, std::int64_t& first, std::int64_t& last,
                         std::int64_t& total) {
  long long a = 0, b = 0, t = -1;
  if (std::sscanf(value.c_str(), "bytes %lld-%lld/%lld", &a, &b, &t) == 3) {
    first = a, last = b, total = t;
    return a <= b;
  }
  if (std::sscanf(value.c_str(), "bytes %lld-%lld/*", &a, &b) == 2) {
    first = a, last = b, total = -1;
    return a <= b;
  }
  return false;
}

int retry_after_secs(const core::HttpResponse& response) {
  auto value = response.header("retry-after");
  if (value.empty() || !std::all_of(value.begin(), value.end(), [](unsigned char c) {
        return std::isdigit(c);
      }))
    return -1;
  return std::stoi(value);
}

core::Result<core::HttpResponse> send_retrying(core::HttpTransport& http, core::Clock& clock,
                                               const core::RetryPolicy& policy,
                                               const core::HttpRequest& request,
                                               const Classifier& classify) {
  std::function<core::Result<core::HttpResponse>()> op = [&]() -> core::Result<core::HttpResponse> {
    TRY_ASSIGN(auto response, http.send(request));
    return classify(std::move(response));
  };
  return core::with_retry<core::HttpResponse>(
      policy, clock, op, [&](int attempt, const core::Error& e, std::chrono::milliseconds delay) {
        core::logger("models")->warn("{} (retry {}/{} in {} ms)", e.message, attempt,
                                     policy.max_attempts, delay.count());
      });
}

namespace {

core::Result<core::HttpResponse> classify_storage(core::HttpResponse r, const std::string& what) {
  if (r.status >= 200 && r.status < 400) {
    if (core::lowercase(r.header("content-type")).find("text/html") != std::string::npos)
      return fail(ErrorCode::protocol,
                  what + " answered an HTML page where a model file was expected",
                  "open the link in a browser: it is probably a login or error page; for "
                  "Civitai set CIVITAI_API_TOKEN");
    return r;
  }
  core::Error e = core::make_error(ErrorCode::remote, what + " answered http " +
                                                         std::to_string(r.status));
  e.http_status = r.status;
  e.retry_after_secs = retry_after_secs(r);
  if (r.status == 429) e.code = ErrorCode::rate_limited;
  if (r.status == 404 || r.status == 410) {
    e.code = ErrorCode::not_found;
    e.hint = "check the URL; a signed link may have expired (sync again to re-resolve it)";
  } else if (r.status == 401 || r.status == 403) {
    e.code = ErrorCode::auth;
    e.hint = "the storage refused the request; a signed link may have expired";
  }
  return fail(std::move(e));
}

}  // namespace

core::Result<Probe> probe_storage(core::HttpTransport& http, core::Clock& clock,
                                  const core::RetryPolicy& policy, const std::string& start_url,
                                  const std::string& user_agent, const std::string& what) {
  Probe p;
  p.url = start_url;
  for (int hop = 0;; ++hop) {
    core::HttpRequest req;
    req.url = p.url;
    req.headers = {{"Range", "bytes=0-0"}, {"User-Agent", user_agent},
                   {"Accept-Encoding", "identity"}};
    std::size_t seen = 0;
    req.sink = [&seen](std::string_view chunk) { return (seen += chunk.size()) <= 65536; };
    auto classify = [&](core::HttpResponse r) { return classify_storage(std::move(r), what); };
    auto got = send_retrying(http, clock, policy, req, classify);
    if (!got && got.error().code == ErrorCode::io) {
      // The server ignored the Range and began sending the whole file: ask HEAD instead.
      req.method = "HEAD";
      req.sink = nullptr;
      req.headers.erase(req.headers.begin());
      got = send_retrying(http, clock, policy, req, classify);
    }
    TRY_ASSIGN(auto r, std::move(got));
    if (r.status >= 300 && r.status < 400 && !r.header("location").empty()) {
      if (hop >= 10) return fail(ErrorCode::protocol, what + " redirected more than 10 times");
      p.url = resolve_location(p.url, r.header("location"));
      continue;
    }
    std::int64_t first = 0, last = 0, total = -1;
    if (r.status == 206 && parse_content_range(r.header("content-range"), first, last, total)) {
      p.ranges = total > 0 && r.header("accept-ranges") != "none";
      p.size = total;
    } else if (!r.header("content-length").empty()) {
      p.size = std::stoll(r.header("content-length"));
    }
    p.validator = r.header("etag").empty() ? r.header("last-modified") : r.header("etag");
    p.content_type = r.header("content-type");
    p.disposition_name = content_disposition_name(r.header("content-disposition"));
    return p;
  }
}

}  // namespace autopod::models
