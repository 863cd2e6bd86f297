#pragma once
// One exponential backoff type for every retry loop: HTTP retries (core/retry.hpp), the
// ComfyUI client's readiness wait, the WebSocket reconnects of a run and the tunnel daemon's
// reconnects. Each names its own schedule; the arithmetic lives here once.

#include <chrono>
#include <cstdint>
#include <random>

namespace autopod::core {

enum class Jitter {
  none,  // exactly the ceiling
  half,  // uniform in [ceiling/2, ceiling]: spreads clients that failed together
};

struct BackoffSchedule {
  std::chrono::milliseconds first{500};   // ceiling before the first retry
  std::chrono::milliseconds max{20000};   // the ceiling never grows past this
  Jitter jitter = Jitter::half;

  // The ceiling before retry number `attempt` (1 = the first): first * 2^(attempt-1), at most max.
  std::chrono::milliseconds ceiling(int attempt) const;
  // The delay before retry `attempt`, jittered as the schedule says.
  std::chrono::milliseconds delay(int attempt, std::mt19937& rng) const;
};

// A schedule being walked: next() gives the delay before the next retry; reset() after a
// success starts again from `first`.
class Backoff {
 public:
  explicit Backoff(BackoffSchedule schedule);
  std::chrono::milliseconds next();
  void reset() { m_attempt = 0; }
  int attempts() const { return m_attempt; }
  const BackoffSchedule& schedule() const { return m_schedule; }

 private:
  BackoffSchedule m_schedule;
  int m_attempt = 0;
  std::mt19937 m_rng;
};

}  // namespace autopod::core
