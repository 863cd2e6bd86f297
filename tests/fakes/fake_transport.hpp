#pragma once
// An HttpTransport for any HTTP client under test (RunPod, ComfyUI, downloads): it records each
// request (and, given a clock, when it was sent) and answers from canned responses matched by
// "METHOD /path?query" prefix.

#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "core/clock.hpp"
#include "core/http.hpp"

namespace autopod::testing {

class FakeTransport final : public core::HttpTransport {
 public:
  using Responder = std::function<core::Result<core::HttpResponse>(const core::HttpRequest&)>;
  // Sees every request first, with its 0-based index; an answer it returns wins over the queue.
  using Interceptor = std::function<std::optional<core::Result<core::HttpResponse>>(
      std::size_t index, const core::HttpRequest&)>;

  FakeTransport() = default;
  // Records clock.now() with each request (see times()).
  explicit FakeTransport(const core::Clock* clock) : m_clock(clock) {}

  // "METHOD /path?query" of a request: the URL without scheme and authority.
  static std::string key_of(const core::HttpRequest& request) {
    const auto& url = request.url;
    auto scheme = url.find("://");
    auto path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    return request.method + " " + (path == std::string::npos ? "/" : url.substr(path));
  }

  static core::HttpResponse response(int status, std::string body, core::Headers headers = {}) {
    core::HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return r;
  }

  // Answers the next request whose key starts with `match` (empty: any), once.
  void expect(std::string match, Responder responder) {
    std::lock_guard lock(m_mutex);
    m_queue.push_back({std::move(match), std::move(responder)});
  }
  void reply(std::string match, int status, std::string body, core::Headers headers = {}) {
    expect(std::move(match), [=](const core::HttpRequest&) -> core::Result<core::HttpResponse> {
      return response(status, body, headers);
    });
  }
  void fail_with(std::string match, core::ErrorCode code) {
    expect(std::move(match), [=](const core::HttpRequest&) -> core::Result<core::HttpResponse> {
      return core::fail(code, "injected transport failure");
    });
  }
  // Answers every request matching `match` that the queue does not, for as long as it lives.
  void always(std::string match, Responder responder) {
    std::lock_guard lock(m_mutex);
    m_routes.push_back({std::move(match), std::move(responder)});
  }
  void intercept(Interceptor interceptor) {
    std::lock_guard lock(m_mutex);
    m_interceptor = std::move(interceptor);
  }

  core::Result<core::HttpResponse> send(const core::HttpRequest& request) override {
    std::lock_guard lock(m_mutex);
    m_requests.push_back(request);
    if (m_clock) m_times.push_back(m_clock->now());
    if (m_interceptor)
      if (auto answer = m_interceptor(m_requests.size() - 1, request)) return *answer;
    std::string key = key_of(request);
    for (auto it = m_queue.begin(); it != m_queue.end(); ++it) {
      if (key.rfind(it->first, 0) == 0) {
        auto responder = it->second;
        m_queue.erase(it);
        return responder(request);
      }
    }
    for (const auto& [match, responder] : m_routes)
      if (key.rfind(match, 0) == 0) return responder(request);
    return core::fail(core::ErrorCode::internal, "unexpected request " + key);
  }

  const std::vector<core::HttpRequest>& requests() const { return m_requests; }
  // When each request was sent, by the clock given at construction (empty without one).
  const std::vector<core::Clock::time_point>& times() const { return m_times; }
  std::size_t count(const std::string& prefix) const {
    std::size_t n = 0;
    for (const auto& r : m_requests)
      if (key_of(r).rfind(prefix, 0) == 0) ++n;
    return n;
  }
  std::size_t pending() const { return m_queue.size(); }

 private:
  std::mutex m_mutex;
  const core::Clock* m_clock = nullptr;
  std::deque<std::pair<std::string, Responder>> m_queue;
  std::vector<std::pair<std::string, Responder>> m_routes;
  Interceptor m_interceptor;
  std::vector<core::HttpRequest> m_requests;
  std::vector<core::Clock::time_point> m_times;
};

}  // namespace autopod::testing
