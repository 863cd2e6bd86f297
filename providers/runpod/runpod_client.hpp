#pragma once
// Internal to runpod/: HTTP to RunPod with its retry rules, every request and every wait
// bounded by the command's deadline when there is one.

#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "core/http.hpp"
#include "core/log.hpp"
#include "providers/runpod/runpod_provider.hpp"

namespace autopod::providers::runpod {

class RunpodClient {
 public:
  RunpodClient(RunpodOptions options, std::unique_ptr<core::HttpTransport> transport,
               core::Clock& clock);

  const RunpodOptions& options() const { return m_options; }
  // From now on requests are clipped to what remains and retries stop at it (timeout).
  void set_deadline(std::optional<core::Clock::time_point> deadline) { m_deadline = deadline; }

  // One request: the 2xx answer, or the Error for the answer (or for its loss).
  Result<core::HttpResponse> send_once(const std::string& method, const std::string& path,
                                       const std::string& body, bool fresh_connection);
  // `send` retried after 429 (Retry-After), 5xx and lost answers, at most retry.max_attempts
  // times; every retry waits a backoff.
  Result<core::HttpResponse> retried(const std::function<Result<core::HttpResponse>()>& send);
  // An idempotent request, retried; its parsed JSON body (null for an empty one).
  Result<nlohmann::json> call(const std::string& method, const std::string& path,
                              const std::string& body = {});

  // Creates what the POST to `path` describes, exactly once: retried until it succeeds, fails
  // for good, or the create budget (options.create_budget, within the deadline) runs out.
  // After a lost answer (no HTTP answer: it may have been carried out) it backs off and asks
  // `find` for the thing by name before sending again; a 5xx answer is retried as RunPod
  // advises, after a backoff. `parse` turns the 2xx body into the result.
  template <typename T>
  Result<T> create(const std::string& path, const std::string& body,
                   const std::function<Result<std::optional<T>>()>& find,
                   const std::function<Result<T>(const core::HttpResponse&)>& parse) {
    auto end = budget_end(m_options.create_budget);
    for (int attempt = 1;; ++attempt) {
      auto r = send_once("POST", path, body, true);
      if (r) return parse(*r);
      auto e = std::move(r).error();
      if (!e.retryable()) return core::fail(std::move(e));
      TRY(wait_before_retry(attempt, e, end));
      if (e.http_status == 0) {  // no answer at all: the create may have happened
        m_log->warn("POST {}: the answer was lost ({}); looking it up by name", path, e.message);
        TRY_ASSIGN(auto found, find());
        if (found) return std::move(*found);
      }
    }
  }

 private:
  std::optional<core::Clock::time_point> budget_end(std::chrono::milliseconds budget) const;
  // Sleeps before retry number `attempt` after `error`; fails instead when Retry-After is longer
  // than the policy allows (the error itself) or the wait would pass `end` (timeout).
  Status wait_before_retry(int attempt, const core::Error& error,
                           std::optional<core::Clock::time_point> end);

  RunpodOptions m_options;
  std::unique_ptr<core::HttpTransport> m_transport;
  core::Clock& m_clock;
  std::optional<core::Clock::time_point> m_deadline;
  core::Clock::time_point m_started;
  std::shared_ptr<spdlog::logger> m_log;
  std::mt19937 m_rng;
};

}  // namespace autopod::providers::runpod
