#pragma once
// An HttpTransport that records each request and answers from a queue of canned responses.

#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "core/http.hpp"

namespace autopod::testing {

class FakeTransport final : public core::HttpTransport {
 public:
  using Responder = std::function<core::Result<core::HttpResponse>(const core::HttpRequest&)>;

  // Answers the next request whose "METHOD path" starts with `match` (empty: any).
  void expect(std::string match, Responder responder) {
    std::lock_guard lock(m_mutex);
    m_queue.push_back({std::move(match), std::move(responder)});
  }
  void reply(std::string match, int status, std::string body, core::Headers headers = {}) {
    expect(std::move(match), [=](const core::HttpRequest&) -> core::Result<core::HttpResponse> {
      core::HttpResponse r;
      r.status = status;
      r.body = body;
      r.headers = headers;
      return r;
    });
  }
  void fail_with(std::string match, core::ErrorCode code) {
    expect(std::move(match), [=](const core::HttpRequest&) -> core::Result<core::HttpResponse> {
      return core::fail(code, "injected transport failure");
    });
  }

  core::Result<core::HttpResponse> send(const core::HttpRequest& request) override {
    std::lock_guard lock(m_mutex);
    m_requests.push_back(request);
    std::string path = request.url.substr(request.url.find("/v2"));
    std::string key = request.method + " " + path;
    for (auto it = m_queue.begin(); it != m_queue.end(); ++it) {
      if (key.rfind(it->first, 0) == 0) {
        auto responder = it->second;
        m_queue.erase(it);
        return responder(request);
      }
    }
    return core::fail(core::ErrorCode::internal, "unexpected request " + key);
  }

  const std::vector<core::HttpRequest>& requests() const { return m_requests; }
  std::size_t count(const std::string& prefix) const {
    std::size_t n = 0;
    for (const auto& r : m_requests)
      if ((r.method + " " + r.url.substr(r.url.find("/v2"))).rfind(prefix, 0) == 0) ++n;
    return n;
  }
  std::size_t pending() const { return m_queue.size(); }

 private:
  std::mutex m_mutex;
  std::deque<std::pair<std::string, Responder>> m_queue;
  std::vector<core::HttpRequest> m_requests;
};

}  // namespace autopod::testing
