#include "core/backoff.hpp"

#include <algorithm>

namespace autopod::core {

std::chrono::milliseconds BackoffSchedule::ceiling(int attempt) const {
  long long c = first.count() << std::clamp(attempt - 1, 0, 20);
  return std::chrono::milliseconds(std::min<long long>(c, max.count()));
}

std::chrono::milliseconds BackoffSchedule::delay(int attempt, std::mt19937& rng) const {
  auto c = ceiling(attempt).count();
  if (jitter == Jitter::none) return std::chrono::milliseconds(c);
  std::uniform_int_distribution<long long> dist(c / 2, c);
  return std::chrono::milliseconds(dist(rng));
}

Backoff::Backoff(BackoffSchedule schedule)
    : m_schedule(schedule), m_rng(std::random_device{}()) {}

std::chrono::milliseconds Backoff::next() { return m_schedule.delay(++m_attempt, m_rng); }

}  // namespace autopod::core
