#include "core/random.hpp"

#include <random>

namespace autopod::core {

std::string random_hex(std::size_t n) {
  thread_local std::mt19937_64 rng{(static_cast<std::uint64_t>(std::random_device{}()) << 32) ^
                                   std::random_device{}()};
  std::string s;
  s.reserve(n);
  for (std::size_t i = 0; i < n; ++i) s += "0123456789abcdef"[rng() % 16];
  return s;
}

}  // namespace autopod::core
