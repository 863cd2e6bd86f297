// maintain's pure decisions: today's spend, idleness, the restart grace, which action applies.

#include <gtest/gtest.h>

#include <cstdlib>

#include "agent/maintain/decide.hpp"
#include "agent/maintain/maintain.hpp"
#include "agent/maintain/memory.hpp"
#include "tests/harness/harness.hpp"
#include "core/text.hpp"

namespace autopod::agent::maintain {
namespace {

using std::chrono::hours;
using std::chrono::minutes;

providers::Pod running_pod(WallTime created, double cost) {
  providers::Pod p;
  p.id = "p1";
  p.name = "pod";
  p.status = providers::PodStatus::running;
  p.cost_per_hr = cost;
  p.created_at = core::iso_time(created);
  return p;
}

// Local time is UTC here, so midnight is a round number.
struct Utc : ::testing::Test {
  void SetUp() override {
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
  WallTime at(int hour, int minute = 0) {
    return std::chrono::system_clock::from_time_t(1767225600) + hours(hour) +
           minutes(minute);  // 2026-01-01
  }
};

TEST_F(Utc, SpendCountsRunningTimeSinceCreationAndSinceTheLastLook) {
  PodMemory m;
  auto pod = running_pod(at(8), 2.0);
  EXPECT_DOUBLE_EQ(account_spend(m, pod, at(9)), 2.0);  // 08:00 to 09:00
  EXPECT_DOUBLE_EQ(account_spend(m, pod, at(10)), 4.0);
  pod.status = providers::PodStatus::exited;
  EXPECT_DOUBLE_EQ(account_spend(m, pod, at(11)), 4.0);  // stopped: nothing added
}

TEST_F(Utc, SpendStartsAgainAtLocalMidnight) {
  PodMemory m;
  auto pod = running_pod(at(-30), 1.0);                   // created the day before yesterday
  EXPECT_DOUBLE_EQ(account_spend(m, pod, at(23)), 23.0);  // since midnight, not since creation
  EXPECT_DOUBLE_EQ(account_spend(m, pod, at(25)), 1.0);   // 01:00 the next day
  EXPECT_EQ(m.day, "2026-01-02");
}

TEST_F(Utc, AStopOrStartBetweenLooksIsCountedFromWhenItHappened) {
  PodMemory m;
  auto pod = running_pod(at(0), 1.0);
  EXPECT_DOUBLE_EQ(account_spend(m, pod, at(8)), 8.0);  // maintain looked at 08:00
  // `autopod stop` at 09:00: the hour it ran counts, and nothing after it.
  account_change(m, pod, true, providers::PodStatus::exited, at(9));
  EXPECT_EQ(m.last_status, "exited");
  // `autopod start` at 12:00: nothing added for the stopped hours.
  account_change(m, pod, false, providers::PodStatus::running, at(12));
  EXPECT_DOUBLE_EQ(m.running_secs, 9 * 3600.0);
  // maintain's next look at 13:00 counts from the start, not from its own last look (08:00).
  EXPECT_DOUBLE_EQ(account_spend(m, pod, at(13)), 10.0);
  // `autopod down` at 13:30 while running.
  account_change(m, pod, true, providers::PodStatus::terminated, at(13, 30));
  EXPECT_DOUBLE_EQ(m.running_secs, 10.5 * 3600.0);
}

// A `stop` recorded while a maintain run is under way (between its load and its save) keeps the
// running time it counted: maintain's save does not put back what it read before the stop.
TEST_F(Utc, AStopRecordedDuringAMaintainRunSurvivesItsSave) {
  testing::TempDir dir;
  core::Home home(dir.path());
  auto pod = running_pod(at(0), 1.0);
  std::map<std::string, PodMemory> memory;
  (void)account_spend(memory[pod.id], pod, at(8));
  ASSERT_TRUE(save_memory(home, {}, memory));

  auto loaded = load_memory(home);  // maintain's run at 10:00 starts
  ASSERT_TRUE(loaded);
  auto ours = *loaded;
  (void)account_spend(ours[pod.id], pod, at(10));
  ours[pod.id].history_sig = "h1";
  ASSERT_TRUE(record_pod_change(home, pod, true, providers::PodStatus::exited, at(10, 30)));
  ASSERT_TRUE(save_memory(home, *loaded, ours));  // ... and ends

  auto after = load_memory(home);
  ASSERT_TRUE(after);
  const auto& m = after->at(pod.id);
  EXPECT_DOUBLE_EQ(m.running_secs, 10.5 * 3600.0);  // until the stop at 10:30, not 10:00
  EXPECT_EQ(m.last_status, "exited");
  EXPECT_EQ(m.history_sig, "h1");  // what maintain learned is kept too
  // Unchanged entries are simply replaced: the next run's save writes its own count.
  auto next = *after;
  next[pod.id].running_secs = 1;
  ASSERT_TRUE(save_memory(home, *after, next));
  EXPECT_DOUBLE_EQ(load_memory(home)->at(pod.id).running_secs, 1);
}

TEST(MaintainDecide, ActivityResetsIdleAndTheFirstLookCountsAsActive) {
  PodMemory m;
  ComfyView up;
  up.health = Health::up;
  up.history_sig = "a,";
  auto t0 = std::chrono::system_clock::from_time_t(1767225600);
  EXPECT_EQ(account_idle(m, up, std::nullopt, t0), 0.0);
  EXPECT_EQ(account_idle(m, up, std::nullopt, t0 + minutes(40)), 40.0);
  up.history_sig = "a,b,";  // grew
  EXPECT_EQ(account_idle(m, up, std::nullopt, t0 + minutes(50)), 0.0);
  EXPECT_EQ(account_idle(m, up, to_epoch(t0 + minutes(55)), t0 + minutes(60)), 5.0);
  ComfyView down;
  down.health = Health::down;
  EXPECT_FALSE(account_idle(m, down, std::nullopt, t0 + minutes(90)).has_value());
}

TEST(MaintainDecide, ActionsFollowTheVolumeAndWhatTheProviderCan) {
  providers::Pod pod;
  providers::Capabilities all;
  EXPECT_EQ(resolve_action("auto", pod, all), Teardown::stop);  // no volume: never terminated
  EXPECT_EQ(resolve_action("down", pod, all), Teardown::stop);
  pod.volume_id = "vol";
  EXPECT_EQ(resolve_action("auto", pod, all), Teardown::down);
  EXPECT_EQ(resolve_action("stop", pod, all), Teardown::stop);
  EXPECT_EQ(resolve_action("notify", pod, all), Teardown::notify);
  providers::Capabilities none;
  none.stop_start = none.terminate = false;
  EXPECT_EQ(resolve_action("auto", pod, none), Teardown::notify);
}

TEST(MaintainDecide, RestartOnlyAfterTheGraceAndNotForAStartingPod) {
  Settings s;
  s.comfy_down_minutes = 10;
  s.restart_command = "supervisorctl restart comfyui";
  PodMemory m;
  ComfyView v;
  v.health = Health::starting;
  auto t0 = std::chrono::system_clock::from_time_t(1767225600);
  std::string why;
  EXPECT_FALSE(restart_due(s, m, v, t0, why));
  EXPECT_EQ(m.comfy_down_since, 0);
  v.health = Health::down;
  EXPECT_FALSE(restart_due(s, m, v, t0 + minutes(1), why));
  EXPECT_FALSE(restart_due(s, m, v, t0 + minutes(10), why));
  EXPECT_TRUE(restart_due(s, m, v, t0 + minutes(11), why));
  v.health = Health::up;
  EXPECT_FALSE(restart_due(s, m, v, t0 + minutes(12), why));
  EXPECT_EQ(m.comfy_down_since, 0);
}

TEST(MaintainDecide, ParsesTheProvidersTimes) {
  EXPECT_EQ(parse_utc("2026-01-01T00:00:10Z"), 1767225610);
  EXPECT_EQ(parse_utc("2026-01-01 00:00:10.123 +0000 UTC"), 1767225610);
  EXPECT_FALSE(parse_utc("yesterday").has_value());
}

}  // namespace
}  // namespace autopod::agent::maintain
