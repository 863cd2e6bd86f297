#include "core/retry.hpp"

#include <algorithm>
#include <thread>

namespace autopod::core {

std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt,
                                        const Error& error, std::mt19937& rng) {
  using std::chrono::milliseconds;
  if (error.retry_after_secs >= 0)
    return std::min(milliseconds(error.retry_after_secs * 1000L), policy.max_retry_after);
  return policy.backoff.delay(attempt, rng);
}

namespace {
class SystemClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  void sleep_for(std::chrono::milliseconds d) override { std::this_thread::sleep_for(d); }
};
}  // namespace

Clock& system_clock() {
  static SystemClock clock;
  return clock;
}

}  // namespace autopod::core
