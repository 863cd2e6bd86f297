#include <gtest/gtest.h>

#include "core/result.hpp"
#include "core/retry.hpp"
#include "tests/fakes/fake_clock.hpp"

namespace autopod {
namespace {

using core::ErrorCode;
using core::Result;

Result<int> half(int x) {
  if (x % 2) return core::fail(ErrorCode::invalid_argument, "odd");
  return x / 2;
}

Result<int> quarter(int x) {
  TRY_ASSIGN(int h, half(x));
  TRY_ASSIGN(int q, half(h));
  return q;
}

TEST(Result, TryAssignPropagatesTheFirstFailure) {
  EXPECT_EQ(quarter(8).value(), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
}

TEST(Error, RetryableFollowsTheCode) {
  auto e = core::make_error(ErrorCode::remote, "x");
  e.http_status = 503;
  EXPECT_TRUE(e.retryable());
  e.http_status = 404;
  EXPECT_FALSE(e.retryable());
  EXPECT_TRUE(core::make_error(ErrorCode::rate_limited, "x").retryable());
  EXPECT_FALSE(core::make_error(ErrorCode::payment, "x").retryable());
  EXPECT_FALSE(core::make_error(ErrorCode::no_capacity, "x").retryable());
}

TEST(Backoff, HonoursRetryAfterOverExponentialDelay) {
  core::RetryPolicy policy;
  std::mt19937 rng(1);
  auto e = core::make_error(ErrorCode::rate_limited, "slow down");
  e.retry_after_secs = 7;
  EXPECT_EQ(core::backoff_delay(policy, 1, e, rng), std::chrono::milliseconds(7000));
}

TEST(Backoff, GrowsExponentiallyWithJitterAndIsBounded) {
  core::RetryPolicy policy;
  policy.backoff.first = std::chrono::milliseconds(100);
  policy.backoff.max = std::chrono::milliseconds(1000);
  std::mt19937 rng(1);
  auto e = core::make_error(ErrorCode::network, "reset");
  for (int attempt = 1; attempt <= 10; ++attempt) {
    long long ceiling = std::min<long long>(100LL << (attempt - 1), 1000);
    auto d = core::backoff_delay(policy, attempt, e, rng).count();
    EXPECT_GE(d, ceiling / 2) << attempt;
    EXPECT_LE(d, ceiling) << attempt;
  }
}

TEST(WithRetry, RetriesRetryableFailuresUntilSuccess) {
  testing::FakeClock clock;
  int calls = 0;
  auto r = core::with_retry<int>(core::RetryPolicy{}, clock, [&]() -> Result<int> {
    if (++calls < 3) return core::fail(ErrorCode::network, "reset");
    return 42;
  });
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(clock.sleeps().size(), 2u);
}

TEST(WithRetry, StopsAtNonRetryableFailure) {
  testing::FakeClock clock;
  int calls = 0;
  auto r = core::with_retry<int>(core::RetryPolicy{}, clock, [&]() -> Result<int> {
    ++calls;
    return core::fail(ErrorCode::auth, "no");
  });
  EXPECT_FALSE(r);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(WithRetry, GivesUpAfterMaxAttempts) {
  testing::FakeClock clock;
  core::RetryPolicy policy;
  policy.max_attempts = 4;
  int calls = 0;
  auto r = core::with_retry<int>(policy, clock, [&]() -> Result<int> {
    ++calls;
    return core::fail(ErrorCode::timeout, "slow");
  });
  EXPECT_EQ(r.error().code, ErrorCode::timeout);
  EXPECT_EQ(calls, 4);
}

TEST(WithRetry, DoesNotWaitForARetryAfterBeyondTheBound) {
  testing::FakeClock clock;
  core::RetryPolicy policy;
  policy.max_retry_after = std::chrono::seconds(10);
  int calls = 0;
  auto r = core::with_retry<int>(policy, clock, [&]() -> Result<int> {
    ++calls;
    auto e = core::make_error(ErrorCode::rate_limited, "wait an hour");
    e.retry_after_secs = 3600;
    return core::fail(e);
  });
  EXPECT_FALSE(r);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(clock.sleeps().empty());
}

}  // namespace
}  // namespace autopod

TEST(Backoff, WalksItsScheduleAndStartsOverAfterReset) {
  autopod::core::Backoff b(
      {std::chrono::milliseconds(250), std::chrono::milliseconds(1000), autopod::core::Jitter::none});
  EXPECT_EQ(b.next(), std::chrono::milliseconds(250));
  EXPECT_EQ(b.next(), std::chrono::milliseconds(500));
  EXPECT_EQ(b.next(), std::chrono::milliseconds(1000));
  EXPECT_EQ(b.next(), std::chrono::milliseconds(1000));
  EXPECT_EQ(b.attempts(), 4);
  b.reset();
  EXPECT_EQ(b.next(), std::chrono::milliseconds(250));
}
