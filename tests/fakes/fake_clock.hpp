#pragma once
// A Clock that never sleeps: sleep_for() advances time and records the delay.

#include <vector>

#include "core/clock.hpp"

namespace autopod::testing {

class FakeClock final : public core::Clock {
 public:
  time_point now() const override { return m_now; }
  void sleep_for(std::chrono::milliseconds d) override {
    m_sleeps.push_back(d);
    m_now += d;
  }
  void advance(std::chrono::milliseconds d) { m_now += d; }
  const std::vector<std::chrono::milliseconds>& sleeps() const { return m_sleeps; }

 private:
  time_point m_now{};
  std::vector<std::chrono::milliseconds> m_sleeps;
};

}  // namespace autopod::testing
