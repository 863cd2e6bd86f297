#pragma once
// Exponential backoff with full jitter, bounded, honouring Retry-After.

#include <chrono>
#include <functional>
#include <random>

#include "core/backoff.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"

namespace autopod::core {

struct RetryPolicy {
  int max_attempts = 5;                       // first try included
  BackoffSchedule backoff{std::chrono::milliseconds(500), std::chrono::milliseconds(20000)};
  std::chrono::milliseconds max_retry_after{120000};  // a longer Retry-After gives up
};

// How long to wait before attempt number `attempt` (1 = the first retry) after `error`.
// Retry-After wins when present (capped at max_retry_after); otherwise the backoff schedule.
std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt,
                                        const Error& error, std::mt19937& rng);

// Called before each retry with the attempt about to be made, the error and the delay.
using RetryObserver =
    std::function<void(int attempt, const Error& error, std::chrono::milliseconds delay)>;

// Calls `op` until it succeeds, fails with a non-retryable error, or the attempts run out.
template <typename T>
Result<T> with_retry(const RetryPolicy& policy, Clock& clock,
                     const std::function<Result<T>()>& op, const RetryObserver& observer = {}) {
  std::mt19937 rng{std::random_device{}()};
  for (int attempt = 1;; ++attempt) {
    Result<T> r = op();
    if (r || !r.error().retryable() || attempt >= policy.max_attempts) return r;
    if (r.error().retry_after_secs * 1000L > policy.max_retry_after.count()) return r;
    auto delay = backoff_delay(policy, attempt, r.error(), rng);
    if (observer) observer(attempt + 1, r.error(), delay);
    clock.sleep_for(delay);
  }
}

}  // namespace autopod::core
