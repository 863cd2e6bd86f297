// autopod maintain's guards on sandbox pods: the daily budget, ComfyUI restarts over the real
// sshd after the grace period, provider errors that must not lead to a teardown, and tunnels.

#include <sys/wait.h>
#include <unistd.h>

#include "tests/agent/maintain_fixture.hpp"

namespace autopod {
namespace {

using testing::json;
using testing::MaintainCli;

TEST_F(MaintainCli, OverTheDailyBudgetTakesPodsDownAndExits10) {
  // Budget: one hour of this pod; maintain looks again two hours after it was created.
  pod_with_comfyui("spender");
  double cost = json::parse(autopod({"info", "spender", "--json"}).out)["cost_per_hr"];
  ASSERT_GT(cost, 0);
  config("maintain:\n  daily_budget: " + std::to_string(cost) + "\n");
  auto first = maintain(0);
  EXPECT_RUN(first, 0);
  EXPECT_LT(line_of(first, "spender")["spend_today"].get<double>(), cost);
  auto later = maintain(120);
  EXPECT_RUN(later, 10);
  auto report = json::parse(later.out);
  EXPECT_TRUE(report["over_budget"].get<bool>());
  EXPECT_NEAR(report["spend_today"].get<double>(), 2 * cost, 0.05 * cost);
  auto line = line_of(later, "spender");
  EXPECT_EQ(line["decision"], "down");
  EXPECT_NE(line["reason"].get<std::string>().find("over the daily budget"), std::string::npos);
  EXPECT_EQ(status_of("spender"), "");
  EXPECT_NE(log_text().find("over the daily budget"), std::string::npos) << log_text();
}

TEST_F(MaintainCli, StopAndStartBetweenRunsCountOnlyTheHoursThePodRan) {
  // maintain looks at 0; `autopod stop` at +60 min, `autopod start` at +120, maintain at +180:
  // the pod ran two of those three hours.
  pod_with_comfyui("onoff");
  double cost = json::parse(autopod({"info", "onoff", "--json"}).out)["cost_per_hr"];
  ASSERT_GT(cost, 0);
  EXPECT_RUN(maintain(0), 0);
  auto at = [&](int minutes) {
    auto e = env;
    e.push_back("AUTOPOD_TEST_NOW_OFFSET_S=" + std::to_string(minutes * 60));
    return e;
  };
  EXPECT_RUN(testing::run_autopod({"stop", "onoff"}, at(60)), 0);
  EXPECT_RUN(testing::run_autopod({"start", "onoff"}, at(120)), 0);
  auto later = maintain(180);
  EXPECT_RUN(later, 0);
  EXPECT_NEAR(line_of(later, "onoff")["spend_today"].get<double>(), 2 * cost, 0.05 * cost) << later.out;
}

TEST_F(MaintainCli, ComfyUIDownPastTheGraceIsRestartedOverSsh) {
  // The pod's sshd runs commands on this machine as this user: the restart command leaves a mark.
  auto mark = dir / "restarted";
  config("maintain:\n  comfy_down_minutes: 10\n  restart_command: touch " + mark.string() + "\n");
  EXPECT_RUN(autopod({"connect", "--name", "sick", "--timeout", "30"}), 0);
  // A tunnel to a port where nothing listens on the pod: ComfyUI is down.
  int nothing = testing::free_port();
  EXPECT_RUN(autopod({"tunnel", "start", "sick", "-L",
                      std::to_string(testing::free_port()) + ":" + std::to_string(nothing)}),
             0);
  auto first = maintain(0);
  EXPECT_RUN(first, 0);
  EXPECT_EQ(line_of(first, "sick")["comfyui"], "down") << first.out;
  auto early = maintain(9);
  EXPECT_RUN(early, 0);
  EXPECT_EQ(line_of(early, "sick")["decision"], "none");
  EXPECT_FALSE(std::filesystem::exists(mark)) << "restarted before the grace period";
  auto due = maintain(11);
  EXPECT_RUN(due, 0);
  EXPECT_EQ(line_of(due, "sick")["decision"], "restart-comfyui") << due.out << due.err;
  EXPECT_TRUE(std::filesystem::exists(mark));
  EXPECT_NE(log_text().find("restart comfyui with `touch"), std::string::npos);
  // The restart starts a new grace period: no second restart a minute later.
  std::filesystem::remove(mark);
  EXPECT_EQ(line_of(maintain(12), "sick")["decision"], "none");
  EXPECT_FALSE(std::filesystem::exists(mark));
}

// Given an idle pod that would be taken down, a provider answering `status` makes it "no
// decision": exit 11, nothing torn down.
void expect_no_decision_on(MaintainCli& t, int status) {
  t.config("maintain:\n  idle_minutes: 30\n  grace_minutes: 0\n");
  t.pod_with_comfyui("cloudy");
  EXPECT_RUN(t.maintain(0), 0);
  sandbox::Fault fault;
  fault.method = "GET";
  fault.path = "/v2/pods";
  fault.kind = "status";
  fault.status = status;
  fault.count = 1000;
  t.server->add_fault(fault);
  auto blind = t.maintain(60, {"--timeout", "3"});
  EXPECT_RUN(blind, 11);
  auto line = MaintainCli::line_of(blind, "cloudy");
  EXPECT_EQ(line["decision"], "no-decision") << blind.out;
  auto snapshot = t.server->snapshot();
  for (const auto& r : snapshot["requests"])
    EXPECT_NE(r["method"], "DELETE") << r;
  ASSERT_EQ(snapshot["pods"].size(), 1u);
  EXPECT_EQ(snapshot["pods"][0]["status"], "RUNNING");
  EXPECT_NE(t.log_text().find("no decision"), std::string::npos);
}

TEST_F(MaintainCli, RateLimitedProviderMeansNoDecision) {
  expect_no_decision_on(*this, 429);
}
TEST_F(MaintainCli, FailingProviderMeansNoDecision) {
  expect_no_decision_on(*this, 503);
}

// A pid that is certainly not running: a child that has exited and been reaped.
pid_t dead_pid() {
  pid_t pid = ::fork();
  if (pid == 0)
    ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

TEST_F(MaintainCli, DeadTunnelIsRestartedAndStaleEntriesRemoved) {
  pod_with_comfyui("tunneled");
  auto state = dir / "home" / "tunnels.json";
  auto doc = json::parse(*core::read_file(state));
  ASSERT_EQ(doc["tunnels"].size(), 1u);
  std::string old_id = doc["tunnels"].begin().key();
  json recorded = doc["tunnels"].begin().value();
  // The daemon dies (its entry stays behind), and a tunnel of a pod that no longer exists.
  EXPECT_RUN(autopod({"tunnel", "stop", old_id}), 0);
  json dead = recorded;
  dead["pid"] = dead_pid();
  json stale = dead;
  stale["id"] = "t-stale";
  stale["spec"]["pod_id"] = "gone-pod";
  stale["spec"]["pod_name"] = "gone";
  doc = json::parse(*core::read_file(state));
  doc["tunnels"][old_id] = dead;
  doc["tunnels"]["t-stale"] = stale;
  ASSERT_TRUE(core::write_file_atomic(state, doc.dump(), 0600));
  // pods.json also remembers that pod as up.
  auto pods = pods_json();
  json record = pods["pods"].begin().value();
  record["name"] = "gone";
  record["id"] = "gone-pod";
  pods["pods"]["runpod/gone"] = record;
  ASSERT_TRUE(core::write_file_atomic(dir / "home" / "pods.json", pods.dump(), 0600));
  auto ran = maintain(0);
  EXPECT_RUN(ran, 0);
  auto report = json::parse(ran.out);
  EXPECT_EQ(report["tunnels"].size(), 2u) << ran.out;
  auto tunnels = json::parse(autopod({"tunnel", "list", "--json"}).out)["tunnels"];
  ASSERT_EQ(tunnels.size(), 1u) << tunnels;
  EXPECT_NE(tunnels[0]["id"], old_id);
  EXPECT_EQ(tunnels[0]["status"], "active");
  EXPECT_EQ(tunnels[0]["spec"]["forwards"], recorded["spec"]["forwards"]);
  // ComfyUI answers through the restarted tunnel.
  EXPECT_EQ(line_of(ran, "tunneled")["comfyui"], "up") << ran.out;
  EXPECT_EQ(line_of(ran, "gone")["status"], "gone") << ran.out;
}

}  // namespace
}  // namespace autopod
