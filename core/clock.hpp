#pragma once
// Time as a seam: production code sleeps through Clock so tests can drive backoff and
// deadlines without sleeping.

#include <chrono>

namespace autopod::core {

class Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
  virtual void sleep_for(std::chrono::milliseconds d) = 0;
};

// The real clock (steady_clock and this_thread::sleep_for). Lives for the whole program.
Clock& system_clock();

}  // namespace autopod::core
