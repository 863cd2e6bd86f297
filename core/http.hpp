#pragma once
// HTTP as a seam: RunPod, ComfyUI and model downloads go through HttpTransport, which tests
// replace with a fake that records each request.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace autopod::core {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Headers headers;  // may hold secrets (Authorization): never logged
  std::string body;
  std::chrono::milliseconds timeout{30000};
  // A new connection that is closed afterwards. For non-idempotent requests: libcurl silently
  // re-sends a request on a reused connection that turns out dead, which could create twice.
  bool fresh_connection = false;
  // When set, a 2xx body is handed over in chunks instead of kept in HttpResponse::body (for
  // downloads); returning false aborts the transfer (an io error). Other statuses keep their
  // body for the error message.
  std::function<bool(std::string_view chunk)> sink;
};

struct HttpResponse {
  int status = 0;
  Headers headers;  // names lowercased
  std::string body;
  // The first value of a header, by case-insensitive name; empty when absent.
  std::string header(std::string_view name) const;
};

// Sends one request. A response with any status is a value; only transport failures
// (refused, reset, timed out, answer cut off) are errors (ErrorCode::network/timeout).
class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual Result<HttpResponse> send(const HttpRequest& request) = 0;
};

// libcurl, reusing one connection between requests (keep-alive) unless told otherwise.
std::unique_ptr<HttpTransport> make_curl_transport();

// "scheme://host:port" of a URL, without path, query or credentials: safe to log.
std::string redact_url(const std::string& url);

}  // namespace autopod::core
