// models::Sha256Worker: the digest of what it was fed, in order, hashed on its own thread.

#include <gtest/gtest.h>

#include <algorithm>

#include "models/internal.hpp"
#include "tests/harness/harness.hpp"

namespace autopod::testing {
namespace {

// Given a state that already holds a prefix, more than the 16 MiB queue in uneven blocks (so
// update() has to wait for the thread): the digest is the whole data's, as Sha256 gives it.
TEST(Sha256Worker, GoesOnFromAStateAndKeepsTheBlocksInOrder) {
  std::string data = random_bytes(40u << 20, 5);
  models::Sha256 whole;
  whole.update(data.data(), data.size());
  models::Sha256 prefix;
  prefix.update(data.data(), 1000);
  models::Sha256Worker worker(std::move(prefix));
  std::size_t at = 1000, block = 1;
  while (at < data.size()) {
    std::size_t n = std::min(data.size() - at, (block++ * 977 * 1024) % (5u << 20) + 1);
    worker.update(data.data() + at, n);
    at += n;
  }
  EXPECT_EQ(worker.hex(), whole.hex());
}

}  // namespace
}  // namespace autopod::testing
