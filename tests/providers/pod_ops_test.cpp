// The provider-independent pod flows (providers/pod_ops.hpp) over a stub provider and a fake
// clock: readiness waits and the connect flow's progress.

#include <gtest/gtest.h>

#include "providers/pod_ops.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/stub_provider.hpp"

namespace autopod {
namespace {

using core::ErrorCode;
using namespace std::chrono_literals;

// Field report 3: polled every 3 s, a pod that stays STARTING made a 4 s wait give up at 3 s
// (the last poll before the deadline) while saying "after 4s".
TEST(WaitUntilReady, TimeoutIsHonouredAndTheMessageSaysTheRealElapsedTime) {
  testing::StubProvider provider;
  provider.created_status = providers::PodStatus::starting;
  auto pod = provider.create_pod({.name = "slow"});
  testing::FakeClock clock;
  auto start = clock.now();
  providers::WaitOptions w;
  w.timeout = 4s;
  w.poll_interval = 3s;
  auto ready = providers::wait_until_ready(provider, pod->id, w, clock, {});
  ASSERT_FALSE(ready);
  EXPECT_EQ(ready.error().code, ErrorCode::timeout);
  auto waited = clock.now() - start;
  EXPECT_GE(waited, 4s - 1s + 500ms);
  EXPECT_LE(waited, 4s + 1s);
  EXPECT_NE(ready.error().message.find("not ready after 4.0s"), std::string::npos)
      << ready.error().message;
}

TEST(ConnectPod, ProgressNamesEveryDataCenterItMayUse) {
  testing::StubProvider provider;
  std::vector<std::string> lines;
  providers::PodSpec spec{.name = "p", .gpu_types = {"A40"}, .data_centers = {"EU-RO-1", "US-KS-2"}};
  auto connected = providers::connect_pod(provider, spec,
                                          [&](const std::string& l) { lines.push_back(l); });
  ASSERT_TRUE(connected) << connected.error().message;
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("EU-RO-1"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("US-KS-2"), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace autopod
