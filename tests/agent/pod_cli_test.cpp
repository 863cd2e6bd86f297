// autopod connect, ls, info, start, stop, down, kill, ssh and gpus end to end against the
// sandbox, whose pods' SSH is a real sshd on 127.0.0.1 (agent/cli/pod_cmds.cpp).

#include <gtest/gtest.h>

#include <cstdlib>

#include <future>

#include "tests/agent/cli_fixture.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::Cli;
using testing::k_key;

TEST_F(Cli, VersionNeedsNothing) {
  auto r = autopod({"--version"});
  EXPECT_RUN(r, 0);
  EXPECT_EQ(r.out, "autopod 0.1.0\n");
}

TEST_F(Cli, PodLifecycleFromConnectToKill) {
  EXPECT_RUN(autopod({"volume", "create", "models", "--size", "50", "--dc", "EU-RO-1"}), 0);
  auto c = autopod({"connect", "--name", "comfy", "--volume", "models", "--gpu", "RTX 4090",
                    "--timeout", "30"});
  EXPECT_RUN(c, 0);
  EXPECT_NE(c.err.find("creating pod comfy"), std::string::npos) << c.err;
  EXPECT_NE(c.err.find("ready: ssh"), std::string::npos) << c.err;
  EXPECT_NE(c.out.find("status:       running"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("data center:  EU-RO-1"), std::string::npos) << c.out;

  auto ls = autopod({"ls"});
  EXPECT_RUN(ls, 0);
  EXPECT_NE(ls.out.find("comfy"), std::string::npos);
  EXPECT_NE(ls.out.find("running"), std::string::npos);

  auto info = autopod({"info", "comfy", "--json"});
  EXPECT_RUN(info, 0);
  auto pod = json::parse(info.out);
  EXPECT_EQ(pod["ssh"]["port"], sshd->port());
  EXPECT_EQ(pod["volume_id"].get<std::string>().empty(), false);

  // The key autopod made was handed to the pod as PUBLIC_KEY; the real sshd accepts it.
  auto ssh = autopod({"ssh", "comfy", "--", "echo", "hello-from-pod"});
  EXPECT_RUN(ssh, 0);
  EXPECT_EQ(ssh.out, "hello-from-pod\n");
  auto printed = autopod({"ssh", "comfy", "--print"});
  EXPECT_RUN(printed, 0);
  EXPECT_NE(printed.out.find("-p " + std::to_string(sshd->port())), std::string::npos);

  EXPECT_RUN(autopod({"stop", "comfy"}), 0);
  EXPECT_EQ(json::parse(autopod({"info", "--json"}).out)["status"], "exited");
  auto again = autopod({"stop", "comfy"});
  EXPECT_RUN(again, 0);
  EXPECT_NE(again.err.find("already stopped"), std::string::npos);
  EXPECT_RUN(autopod({"start", "comfy"}), 0);
  // Reconnecting without flags must not make autopod forget the pod's volume.
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);

  auto down = autopod({"down", "comfy"});
  EXPECT_RUN(down, 0);
  EXPECT_NE(down.err.find("autopod connect --name comfy"), std::string::npos);
  auto after = json::parse(autopod({"ls", "--json"}).out);
  EXPECT_TRUE(after["pods"].empty());
  ASSERT_EQ(after["down"].size(), 1u);
  EXPECT_EQ(pods_json()["pods"]["runpod/comfy"]["status"], "down");

  // connect --name recreates it from what pods.json remembers: same volume and data center.
  auto back = autopod({"connect", "--name", "comfy", "--json", "--timeout", "30"});
  EXPECT_RUN(back, 0);
  auto recreated = json::parse(back.out);
  EXPECT_EQ(recreated["volume_id"], pod["volume_id"]);
  EXPECT_EQ(recreated["data_center"], "EU-RO-1");
  EXPECT_EQ(recreated["gpu_type"], "NVIDIA GeForce RTX 4090");

  auto refused = autopod({"kill", "comfy"});
  EXPECT_RUN(refused, 2);
  EXPECT_NE(refused.err.find("--yes"), std::string::npos);
  EXPECT_RUN(autopod({"kill", "comfy", "--yes"}), 0);
  EXPECT_TRUE(server->snapshot()["pods"].empty());
  EXPECT_FALSE(pods_json()["pods"].contains("runpod/comfy"));
  EXPECT_EQ(server->snapshot()["volumes"].size(), 1u);  // the volume outlives its pods
}

TEST_F(Cli, LsJsonHasAStableShape) {
  EXPECT_RUN(autopod({"connect", "--name", "a", "--gpu", "NVIDIA A40", "--no-wait"}), 0);
  auto ls = autopod({"ls", "--json"});
  EXPECT_RUN(ls, 0);
  auto doc = json::parse(ls.out);
  ASSERT_EQ(doc["pods"].size(), 1u);
  for (const char* key : {"id", "name", "provider", "status", "image", "gpu_type", "gpu_count",
                          "cloud", "data_center", "cost_per_hr", "volume_id", "mount_path",
                          "ports", "ssh", "created_at"})
    EXPECT_TRUE(doc["pods"][0].contains(key)) << key;
  EXPECT_TRUE(doc["down"].is_array());
}

TEST_F(Cli, DownOfAPodWithoutAVolumeAsksFirst) {
  EXPECT_RUN(autopod({"connect", "--name", "scratch", "--no-wait"}), 0);
  auto r = autopod({"down", "scratch"});
  EXPECT_RUN(r, 2);
  EXPECT_NE(r.err.find("no network volume"), std::string::npos);
  EXPECT_EQ(server->snapshot()["pods"].size(), 1u);
}

TEST_F(Cli, MissingApiKeySaysHowToSetIt) {
  env[2] = "RUNPOD_API_KEY=";
  auto r = autopod({"ls"});
  EXPECT_RUN(r, 4);
  EXPECT_NE(r.err.find("export RUNPOD_API_KEY"), std::string::npos) << r.err;
}

TEST_F(Cli, RefusedApiKeyIsExitFour) {
  env[2] = "RUNPOD_API_KEY=rpa_wrong_key_000000";
  auto r = autopod({"ls"});
  EXPECT_RUN(r, 4);
  EXPECT_NE(r.err.find("refused the api key (http 401)"), std::string::npos) << r.err;
}

TEST_F(Cli, UnknownGpuListsTheValidOnes) {
  auto r = autopod({"connect", "--gpu", "RTX 9090", "--no-wait"});
  EXPECT_RUN(r, 2);
  EXPECT_NE(r.err.find("unknown gpu type 'RTX 9090'"), std::string::npos);
  EXPECT_NE(r.err.find("NVIDIA L40S"), std::string::npos);
  EXPECT_TRUE(server->snapshot()["pods"].empty());
}

TEST_F(Cli, NoCapacityIsExitSix) {
  server->set_capacity("*", "*", false);
  auto r = autopod({"connect", "--gpu", "NVIDIA A40", "--gpu", "NVIDIA L40S", "--no-wait"});
  EXPECT_RUN(r, 6);
  EXPECT_NE(r.err.find("no capacity"), std::string::npos);
}

TEST_F(Cli, VolumeInAnotherDataCenterIsRefusedBeforeAnyCreate) {
  EXPECT_RUN(autopod({"volume", "create", "models", "--size", "20", "--dc", "US-KS-2"}), 0);
  auto r = autopod({"connect", "--volume", "models", "--dc", "EU-RO-1", "--no-wait"});
  EXPECT_RUN(r, 2);
  EXPECT_NE(r.err.find("volume models is in US-KS-2"), std::string::npos) << r.err;
  auto snapshot = server->snapshot();
  for (const auto& req : snapshot["requests"])
    EXPECT_FALSE(req["method"] == "POST" && req["path"] == "/v2/pods");
}

TEST_F(Cli, UnknownPodIsExitThree) {
  auto r = autopod({"info", "nope"});
  EXPECT_RUN(r, 3);
  EXPECT_NE(r.err.find("no pod 'nope'"), std::string::npos);
}

TEST_F(Cli, UsageErrorIsExitTwo) {
  EXPECT_RUN(autopod({"connect", "--cloud", "moon"}), 2);
  EXPECT_RUN(autopod({"frobnicate"}), 2);
}

TEST_F(Cli, GpusShowsTypesMemoryAndPrices) {
  auto r = autopod({"gpus"});
  EXPECT_RUN(r, 0);
  EXPECT_NE(r.out.find("NVIDIA GeForce RTX 4090"), std::string::npos);
  EXPECT_NE(r.out.find("24 GB"), std::string::npos);
  EXPECT_NE(r.out.find("$0.69/hr"), std::string::npos);
  EXPECT_FALSE(json::parse(autopod({"gpus", "--json"}).out)["gpus"].empty());
}

TEST_F(Cli, SecretsStayOutOfStateAndLogs) {
  auto r = autopod({"-v", "connect", "--name", "s", "--no-wait"});
  EXPECT_RUN(r, 0);
  EXPECT_EQ(r.err.find(k_key), std::string::npos);
  EXPECT_NE(r.err.find("debug"), std::string::npos);  // it did log
  EXPECT_EQ(core::read_file(dir / "home" / "pods.json")->find(k_key), std::string::npos);
  EXPECT_EQ(core::file_mode(dir / "home" / "pods.json"), 0600);
  EXPECT_EQ(core::file_mode(dir / "home" / "id_ed25519"), 0600);
}

// 50 autopod processes create 50 pods at once: pods.json keeps every one and stays valid.
TEST_F(Cli, FiftyConcurrentConnectsLoseNoRecord) {
  std::vector<std::future<core::ProcessOutput>> runs;
  for (int i = 0; i < 50; ++i)
    runs.push_back(std::async(std::launch::async, [this, i] {
      return autopod({"connect", "--name", "p" + std::to_string(i), "--no-wait"});
    }));
  for (auto& f : runs) EXPECT_RUN(f.get(), 0);
  EXPECT_EQ(pods_json()["pods"].size(), 50u);
  EXPECT_EQ(server->snapshot()["pods"].size(), 50u);
}

}  // namespace
}  // namespace autopod

namespace autopod {
namespace {

using nlohmann::json;
using testing::Cli;
using testing::k_key;

// Field report 3: a pod that stays STARTING, polled every 3 s. --timeout 4 waits about 4 s (it
// used to give up at the last poll before the deadline, after 3 s) and says how long it waited.
TEST_F(Cli, ConnectTimeoutBoundsTheWaitAndSaysTheRealTime) {
  sandbox::SandboxOptions o;
  o.api_key = k_key;
  o.provisioning_time = std::chrono::milliseconds(0);
  o.starting_time = std::chrono::hours(1);
  sandbox::RunpodSandbox slow(o);
  ASSERT_TRUE(slow.start());
  env[1] = "RUNPOD_API_URL=" + slow.url();
  env[3] = "AUTOPOD_POLL_MS=3000";
  auto t0 = std::chrono::steady_clock::now();
  auto r = autopod({"connect", "--name", "slow", "--timeout", "4"});
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_RUN(r, 5);
  EXPECT_GE(secs, 3.5);
  EXPECT_LE(secs, 5.5);
  // The message states the real elapsed time (3.9 s under a sanitizer, 4.0 s otherwise).
  auto at = r.err.find("not ready after ");
  ASSERT_NE(at, std::string::npos) << r.err;
  double said = std::strtod(r.err.c_str() + at + 16, nullptr);
  EXPECT_GE(said, 3.5) << r.err;
  EXPECT_LE(said, secs + 0.05) << r.err;
  EXPECT_GE(said, secs - 0.5) << r.err;
}

// Field report 4: an API where every other request (1st, 3rd, ...) fails and does nothing.
void connect_through_a_flaky_api(Cli& t, int status) {
  t.server->add_fault({.path = "/v2/", .kind = "every_other", .status = status, .count = 1 << 20});
  auto r = t.autopod({"connect", "--name", "flaky", "--gpu", "RTX 4090", "--timeout", "60"});
  EXPECT_RUN(r, 0);
  int named = 0;
  auto snapshot = t.server->snapshot();
  for (const auto& pod : snapshot["pods"]) named += pod["name"] == "flaky";
  EXPECT_EQ(named, 1);
}

TEST_F(Cli, ConnectSurvivesAnApiWhereEveryOtherRequestAnswers503) {
  connect_through_a_flaky_api(*this, 503);
}

TEST_F(Cli, ConnectSurvivesAnApiWhereEveryOtherRequestIsA502GatewayPage) {
  connect_through_a_flaky_api(*this, 502);
}

// Field report 5b: a request autopod built is not the user's input: exit 1, with RunPod's errors.
TEST_F(Cli, CreateRejectedByRunpodsSchemaIsExitOneWithItsErrors) {
  server->add_fault({.method = "POST", .path = "/v2/pods", .kind = "status", .status = 422});
  auto r = autopod({"connect", "--name", "x", "--no-wait"});
  EXPECT_RUN(r, 1);
  EXPECT_NE(r.err.find("injected: property not accepted"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("report"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace autopod
