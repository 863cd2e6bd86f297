#include "core/http.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "core/log.hpp"
#include "core/text.hpp"

namespace autopod::core {
namespace {

struct BodyTarget {
  CURL* curl;
  const HttpRequest* request;
  std::string* body;
  bool aborted = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<BodyTarget*>(user);
  if (t->request->sink) {
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
      if (!t->request->sink(std::string_view(data, size * n))) {
        t->aborted = true;
        return 0;
      }
      return size * n;
    }
  }
  t->body->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    response->headers.clear();  // a new status line (e.g. after 100 Continue)
    return size * n;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = lowercase(line.substr(0, colon));
  std::string value = line.substr(colon + 1);
  auto first = value.find_first_not_of(" \t");
  auto last = value.find_last_not_of(" \t\r\n");
  value = first == std::string::npos ? "" : value.substr(first, last - first + 1);
  response->headers.emplace_back(std::move(name), std::move(value));
  return size * n;
}

class CurlTransport final : public HttpTransport {
 public:
  CurlTransport() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    m_curl = curl_easy_init();
    ASSERT(m_curl != nullptr);
  }
  ~CurlTransport() override { curl_easy_cleanup(m_curl); }
  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  Result<HttpResponse> send(const HttpRequest& request) override {
    std::lock_guard lock(m_mutex);
    CURL* c = m_curl;
    curl_easy_reset(c);
    HttpResponse response;
    curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    BodyTarget target{c, &request, &response.body};
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &target);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &response);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "autopod/0.1");
    if (request.method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
        request.method == "PATCH") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(request.body.size()));
    }
    if (request.fresh_connection) {
      curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
      curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    }
    curl_slist* list = nullptr;
    for (const auto& [name, value] : request.headers)
      list = curl_slist_append(list, (name + ": " + value).c_str());
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);

    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(list);
    std::string where = request.method + " " + redact_url(request.url);
    if (target.aborted) return fail(ErrorCode::io, "writing the body of " + where + " failed");
    if (rc == CURLE_OPERATION_TIMEDOUT)
      return fail(ErrorCode::timeout, "no answer from " + where + " in time");
    if (rc != CURLE_OK) {
      logger("core")->debug("{} failed: {}", where, curl_easy_strerror(rc));
      return fail(ErrorCode::network,
                  "cannot reach " + where + ": " + curl_easy_strerror(rc));
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    response.status = static_cast<int>(status);
    logger("core")->debug("{} -> {}", where, response.status);
    return response;
  }

 private:
  std::mutex m_mutex;
  CURL* m_curl = nullptr;
};

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  std::string wanted = lowercase(std::string(name));
  for (const auto& [n, v] : headers)
    if (n == wanted) return v;
  return {};
}

std::unique_ptr<HttpTransport> make_curl_transport() { return std::make_unique<CurlTransport>(); }

std::string redact_url(const std::string& url) {
  auto scheme = url.find("://");
  std::size_t host_start = scheme == std::string::npos ? 0 : scheme + 3;
  auto path = url.find_first_of("/?#", host_start);
  std::string authority = url.substr(host_start, path == std::string::npos ? std::string::npos
                                                                            : path - host_start);
  auto at = authority.rfind('@');
  if (at != std::string::npos) authority = "***@" + authority.substr(at + 1);
  std::string rest = path == std::string::npos ? "" : url.substr(path);
  auto query = rest.find('?');
  if (query != std::string::npos) rest = rest.substr(0, query) + "?…";
  return url.substr(0, host_start) + authority + rest;
}

}  // namespace autopod::core
