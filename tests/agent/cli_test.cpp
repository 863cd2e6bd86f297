// The autopod binary end to end: every pod, volume and config command against the sandbox,
// whose pods' SSH is a real sshd on 127.0.0.1.

#include <gtest/gtest.h>

#include <future>
#include <sstream>

#include "core/fs.hpp"
#include "core/ssh_key.hpp"
#include "sandbox/runpod_sandbox.hpp"
#include "sandbox/sshd_harness.hpp"
#include "sandbox/tcp_target.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::run_autopod;

const char* k_key = "rpa_cli_test_key_0123456789";

struct Cli : ::testing::Test {
  testing::TempDir dir;
  std::unique_ptr<sandbox::SshdHarness> sshd;
  std::unique_ptr<sandbox::RunpodSandbox> server;
  std::vector<std::string> env;

  void SetUp() override {
    auto started = sandbox::SshdHarness::start(dir / "sshd");
    ASSERT_TRUE(started) << started.error().describe();
    sshd = std::move(started).value();
    sandbox::SandboxOptions o;
    o.api_key = k_key;
    o.ssh_port = sshd->port();
    o.ssh_user = sshd->user();
    o.authorized_keys = sshd->authorized_keys();
    o.provisioning_time = std::chrono::milliseconds(30);
    o.starting_time = std::chrono::milliseconds(30);
    server = std::make_unique<sandbox::RunpodSandbox>(o);
    ASSERT_TRUE(server->start());
    env = {"AUTOPOD_HOME=" + (dir / "home").string(), "RUNPOD_API_URL=" + server->url(),
           std::string("RUNPOD_API_KEY=") + k_key, "AUTOPOD_POLL_MS=20", "AUTOPOD_PROVIDER=",
           "AUTOPOD_LOG_LEVEL="};
  }

  void TearDown() override { run_autopod({"tunnel", "stop-all"}, env); }

  core::ProcessOutput autopod(const std::vector<std::string>& args) {
    return run_autopod(args, env);
  }
  json pods_json() { return json::parse(core::read_file(dir / "home" / "pods.json").value()); }
  std::size_t requests() { return server->snapshot()["requests"].size(); }
};

#define EXPECT_RUN(result, code)                                                    \
  EXPECT_EQ((result).exit_code, code) << "stdout: " << (result).out << "\nstderr: " \
                                      << (result).err

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

TEST_F(Cli, MalformedConfigStopsEverythingAndSaysWhere) {
  ASSERT_TRUE(core::ensure_dir(dir / "home"));
  ASSERT_TRUE(core::write_file_atomic(dir / "home" / "config.yaml",
                                      "pod:\n  gpu_count: [1\n", 0600));
  auto r = autopod({"ls"});
  EXPECT_RUN(r, 2);
  EXPECT_NE(r.err.find("config.yaml:3:1"), std::string::npos) << r.err;
  EXPECT_EQ(requests(), 0u);
}

TEST_F(Cli, VolumeCommands) {
  auto created = autopod({"volume", "create", "models", "--size", "100", "--dc", "EU-RO-1", "--json"});
  EXPECT_RUN(created, 0);
  auto vol = json::parse(created.out);
  auto again = autopod({"volume", "create", "models", "--size", "100", "--dc", "EU-RO-1"});
  EXPECT_RUN(again, 0);
  EXPECT_NE(again.err.find("already exists"), std::string::npos);
  auto ls = autopod({"volume", "ls", "--json"});
  EXPECT_EQ(json::parse(ls.out)["volumes"].size(), 1u);
  EXPECT_RUN(autopod({"volume", "create", "tiny", "--size", "5", "--dc", "EU-RO-1"}), 2);
  EXPECT_RUN(autopod({"volume", "rm", "models"}), 2);  // no terminal to ask, no --yes
  EXPECT_RUN(autopod({"volume", "rm", "models", "--yes"}), 0);
  EXPECT_TRUE(server->snapshot()["volumes"].empty());
}

TEST_F(Cli, GpusShowsTypesMemoryAndPrices) {
  auto r = autopod({"gpus"});
  EXPECT_RUN(r, 0);
  EXPECT_NE(r.out.find("NVIDIA GeForce RTX 4090"), std::string::npos);
  EXPECT_NE(r.out.find("24 GB"), std::string::npos);
  EXPECT_NE(r.out.find("$0.69/hr"), std::string::npos);
  EXPECT_FALSE(json::parse(autopod({"gpus", "--json"}).out)["gpus"].empty());
}

TEST_F(Cli, ConfigShowMasksTheKeyAndInitWritesAPrivateFile) {
  auto show = autopod({"config", "show"});
  EXPECT_RUN(show, 0);
  EXPECT_EQ(show.out.find(k_key), std::string::npos);
  EXPECT_NE(show.out.find("****6789"), std::string::npos);
  EXPECT_RUN(autopod({"config", "init"}), 0);
  EXPECT_EQ(core::file_mode(dir / "home" / "config.yaml"), 0600);
  EXPECT_RUN(autopod({"config", "init"}), 2);  // never overwrites without --force
  EXPECT_RUN(autopod({"config", "show", "--json"}), 0);
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

TEST_F(Cli, SshProviderUsesConfiguredHosts) {
  ASSERT_TRUE(core::ensure_dir(dir / "home"));
  auto key = core::ensure_ssh_key(dir / "home" / "box_key", true);
  ASSERT_TRUE(key);
  ASSERT_TRUE(sshd->authorize(key->public_key));
  ASSERT_TRUE(core::write_file_atomic(
      dir / "home" / "config.yaml",
      "provider: ssh\nhosts:\n  box:\n    host: 127.0.0.1\n    port: " +
          std::to_string(sshd->port()) + "\n    user: " + sshd->user() + "\n    key: " +
          (dir / "home" / "box_key").string() + "\n",
      0600));
  auto ls = autopod({"ls"});
  EXPECT_RUN(ls, 0);
  EXPECT_NE(ls.out.find("box"), std::string::npos);
  auto connect = autopod({"connect", "--name", "box", "--timeout", "10"});
  EXPECT_RUN(connect, 0);
  EXPECT_NE(connect.err.find("ready"), std::string::npos);
  auto ssh = autopod({"ssh", "box", "--", "echo", "on-my-box"});
  EXPECT_RUN(ssh, 0);
  EXPECT_EQ(ssh.out, "on-my-box\n");
  auto kill = autopod({"kill", "box", "--yes"});
  EXPECT_RUN(kill, 1);
  EXPECT_NE(kill.err.find("ssh provider cannot terminate"), std::string::npos);
  EXPECT_EQ(requests(), 0u);  // nothing went to runpod
}

TEST_F(Cli, PluginProviderFromPluginDir) {
  auto r = autopod({"--plugin-dir", testing::plugin_dir(), "--provider", "static", "connect",
                    "--name", "x", "--no-wait", "--json"});
  EXPECT_RUN(r, 0);
  EXPECT_EQ(json::parse(r.out)["provider"], "static");
  auto providers = autopod({"--plugin-dir", testing::plugin_dir(), "providers", "--json"});
  EXPECT_RUN(providers, 0);
  auto doc = json::parse(providers.out);
  EXPECT_FALSE(doc["plugin_errors"].empty());  // the deliberately bad test plugins
  auto names = doc["providers"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(names.begin(), names.end(), "static"), names.end());
}

}  // namespace
}  // namespace autopod

namespace autopod {
namespace {

TEST_F(Cli, TunnelCommandsEndToEnd) {
  sandbox::TcpTarget target;
  ASSERT_TRUE(target.start());
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  int local = testing::free_port();
  std::string forward = std::to_string(local) + ":" + std::to_string(target.port());
  auto start = autopod({"tunnel", "start", "comfy", "-L", forward});
  EXPECT_RUN(start, 0);
  EXPECT_NE(start.out.find("http://127.0.0.1:" + std::to_string(local)), std::string::npos);
  auto again = autopod({"tunnel", "start", "comfy", "-L", forward});
  EXPECT_RUN(again, 0);
  EXPECT_NE(again.err.find("already running"), std::string::npos);
  ASSERT_TRUE(sandbox::pull_pattern(local, 1 << 20, 5));

  auto list = autopod({"tunnel", "list", "--json"});
  EXPECT_RUN(list, 0);
  auto doc = json::parse(list.out);
  ASSERT_EQ(doc["tunnels"].size(), 1u);
  auto t = doc["tunnels"][0];
  for (const char* key : {"id", "spec", "pid", "start_time", "started_at", "status", "last_error",
                          "log_file", "stats"})
    EXPECT_TRUE(t.contains(key)) << key;
  EXPECT_EQ(t["status"], "active");
  EXPECT_GE(t["stats"]["bytes_from_pod"].get<std::uint64_t>(), 1u << 20);
  EXPECT_EQ(t["spec"]["pod_name"], "comfy");
  auto table = autopod({"tunnel", "list"});
  EXPECT_NE(table.out.find("active"), std::string::npos);
  EXPECT_NE(table.out.find("1.0 MiB"), std::string::npos) << table.out;

  EXPECT_RUN(autopod({"tunnel", "stop", "comfy"}), 0);
  EXPECT_EQ(json::parse(autopod({"tunnel", "list", "--json"}).out)["tunnels"].size(), 0u);
  EXPECT_RUN(autopod({"tunnel", "stop", "comfy"}), 3);
}

TEST_F(Cli, TunnelToAStoppedPodSaysToStartIt) {
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  EXPECT_RUN(autopod({"stop", "comfy"}), 0);
  auto r = autopod({"tunnel", "start", "comfy"});
  EXPECT_RUN(r, 1);
  EXPECT_NE(r.err.find("pod comfy is exited, not running"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("autopod connect --name comfy"), std::string::npos);
}

TEST_F(Cli, KillingAPodStopsItsTunnels) {
  sandbox::TcpTarget target;
  ASSERT_TRUE(target.start());
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  EXPECT_RUN(autopod({"tunnel", "start", "-L",
                      std::to_string(testing::free_port()) + ":" + std::to_string(target.port())}), 0);
  auto kill = autopod({"kill", "comfy", "--yes"});
  EXPECT_RUN(kill, 0);
  EXPECT_NE(kill.err.find("stopped tunnel"), std::string::npos);
  EXPECT_EQ(json::parse(autopod({"tunnel", "list", "--json"}).out)["tunnels"].size(), 0u);
}

TEST_F(Cli, TunnelBindingBeyondLoopbackWarns) {
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  auto r = autopod({"tunnel", "start", "--bind", "0.0.0.0", "-L",
                    std::to_string(testing::free_port()) + ":1"});
  EXPECT_RUN(r, 0);
  EXPECT_NE(r.err.find("warning: listening on 0.0.0.0"), std::string::npos) << r.err;
  EXPECT_RUN(autopod({"tunnel", "stop-all"}), 0);
}

}  // namespace
}  // namespace autopod

#include "sandbox/comfy_fake.hpp"

namespace autopod {
namespace {

TEST_F(Cli, ComfyCommandsWithUrl) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  fake.add_pending("p-1", 3, json::object());
  fake.add_history("done-1", json::parse(R"({"outputs": {"9": {"images": [
      {"filename": "acc_00002_.png", "subfolder": "", "type": "output"}]}},
      "status": {"status_str": "success", "completed": true, "messages": []}})"));
  auto status = autopod({"comfy", "status", "--url", fake.url()});
  EXPECT_RUN(status, 0);
  EXPECT_NE(status.out.find("ready"), std::string::npos);
  EXPECT_NE(status.out.find("0.3.64"), std::string::npos);
  auto info = autopod({"comfy", "info", "--url", fake.url(), "--json"});
  EXPECT_RUN(info, 0);
  auto doc = json::parse(info.out);
  EXPECT_EQ(doc["comfyui_version"], "0.3.64");
  EXPECT_EQ(doc["queue_pending"], 1);
  EXPECT_EQ(doc["node_count"], 13);
  EXPECT_EQ(doc["devices"][0]["type"], "cpu");
  auto queue = autopod({"comfy", "queue", "--url", fake.url()});
  EXPECT_RUN(queue, 0);
  EXPECT_NE(queue.out.find("pending  p-1"), std::string::npos) << queue.out;
  auto history = autopod({"comfy", "history", "--url", fake.url(), "--prompt", "done-1"});
  EXPECT_RUN(history, 0);
  EXPECT_NE(history.out.find("acc_00002_.png"), std::string::npos) << history.out;
  EXPECT_RUN(autopod({"comfy", "history", "--url", fake.url(), "--prompt", "nope"}), 3);
  EXPECT_RUN(autopod({"comfy", "cancel", "--url", fake.url(), "--prompt", "nope"}), 3);
  EXPECT_RUN(autopod({"comfy", "cancel", "--url", fake.url(), "--prompt", "p-1"}), 0);
  EXPECT_EQ(json::parse(autopod({"comfy", "queue", "--url", fake.url(), "--json"}).out)["pending"].size(), 0u);
  EXPECT_RUN(autopod({"comfy", "free", "--url", fake.url(), "--keep-cache"}), 0);
  EXPECT_EQ(fake.last_free(), json({{"unload_models", true}, {"free_memory", false}}));
  EXPECT_RUN(autopod({"comfy", "interrupt", "--url", fake.url()}), 0);
}

TEST_F(Cli, ComfyStatusOfNothingIsNotReady) {
  auto r = autopod({"comfy", "status", "--url", "http://127.0.0.1:" + std::to_string(testing::free_port()),
                    "--timeout", "1"});
  EXPECT_RUN(r, 5);
  EXPECT_NE(r.err.find("comfyui not ready"), std::string::npos) << r.err;
}

const std::filesystem::path k_workflows = AUTOPOD_TEST_DATA_DIR "/workflows";

TEST_F(Cli, ComfyRunSavesOutputsAndListsThemOnStdout) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  auto out = dir / "out";
  auto r = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url(), "--out",
                    out.string(), "--set", "KSampler.steps=5", "--set", "Positive.text=a red fox"});
  EXPECT_RUN(r, 0);
  EXPECT_EQ(r.out, (out / "autopod/txt2img_00001_.png").string() + "\n");
  EXPECT_TRUE(std::filesystem::exists(out / "autopod/txt2img_00001_.png"));
  // Without a terminal: one plain line per event.
  EXPECT_NE(r.err.find("step 5/5 #3 KSampler"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("executing #6 Positive (CLIPTextEncode)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(": success in "), std::string::npos) << r.err;
  auto sent = fake.submitted().at(0)["prompt"];
  EXPECT_EQ(sent["3"]["inputs"]["steps"], 5);
  EXPECT_EQ(sent["6"]["inputs"]["text"], "a red fox");
}

TEST_F(Cli, ComfyRunJsonLinesAndNoWait) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  auto r = autopod({"comfy", "run", (k_workflows / "empty_image_api.json").string(), "--url", fake.url(), "--out",
                    (dir / "o").string(), "--json", "--count", "2"});
  EXPECT_RUN(r, 0);
  std::vector<json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));  // every line is JSON
  int saved = 0, finished = 0;
  for (const auto& l : lines) {
    saved += l["event"] == "saved";
    if (l["event"] == "finished") {
      ++finished;
      EXPECT_EQ(l["outcome"], "success");
    }
  }
  EXPECT_EQ(saved, 2);
  EXPECT_EQ(finished, 2);
  fake.hold_queue(true);
  auto nowait = autopod({"comfy", "run", (k_workflows / "empty_image_api.json").string(), "--url", fake.url(),
                         "--no-wait"});
  EXPECT_RUN(nowait, 0);
  EXPECT_EQ(nowait.out.size(), 37u);  // a prompt id and a newline
  EXPECT_NE(autopod({"comfy", "queue", "--url", fake.url()}).out.find(nowait.out.substr(0, 36)), std::string::npos);
}

TEST_F(Cli, ComfyRunExitCodesSayHowItEnded) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  // A node raises: 7, with node, type, message and the traceback's last line.
  auto wf = dir / "canny.json";
  ASSERT_TRUE(core::write_file_atomic(wf, R"({"30": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32,
    "batch_size": 1, "color": 140}}, "31": {"class_type": "Canny", "inputs": {"image": ["30", 0],
    "low_threshold": 0.4, "high_threshold": 0.8}}, "32": {"class_type": "SaveImage", "inputs": {"images": ["31", 0],
    "filename_prefix": "acc_err"}}})"));
  auto failed = autopod({"comfy", "run", wf.string(), "--url", fake.url()});
  EXPECT_RUN(failed, 7);
  EXPECT_NE(failed.err.find("node #31 Canny raised _comfystub.StubUnavailable"), std::string::npos) << failed.err;
  EXPECT_NE(failed.err.find("at: raise StubUnavailable"), std::string::npos) << failed.err;
  // Rejected by validation: 2, every node error listed.
  auto rejected = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url(),
                           "--set", "4.ckpt_name=nope.safetensors", "--set", "5.width=0"});
  EXPECT_RUN(rejected, 2);
  EXPECT_NE(rejected.err.find("node 4 (CheckpointLoaderSimple) input ckpt_name: Value not in list"), std::string::npos)
      << rejected.err;
  EXPECT_NE(rejected.err.find("node 5 (EmptyLatentImage) input width: Value 0 smaller than min of 16"),
            std::string::npos);
  // Interrupted (by another client here): 8.
  fake.interrupt_at_step(3);
  auto interrupted = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url(),
                              "--set", "3.seed=1"});
  EXPECT_RUN(interrupted, 8);
  EXPECT_NE(interrupted.err.find("#3 KSampler was interrupted"), std::string::npos) << interrupted.err;
  // Bad input files: 2, before anything is sent.
  std::size_t before = fake.submitted().size();
  ASSERT_TRUE(core::write_file_atomic(dir / "broken.json", "{\n  \"1\": {\"class_type\": \"SaveImage\"\n"));
  auto broken = autopod({"comfy", "run", (dir / "broken.json").string(), "--url", fake.url()});
  EXPECT_RUN(broken, 2);
  EXPECT_NE(broken.err.find("broken.json:3:"), std::string::npos) << broken.err;
  EXPECT_RUN(autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url(), "--set",
                      "Nobody.seed=1"}),
             2);
  EXPECT_RUN(autopod({"comfy", "run", (dir / "missing.json").string(), "--url", fake.url()}), 2);
  EXPECT_EQ(fake.submitted().size(), before);
  // Nothing there: 1, and clearly said.
  auto down = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url",
                       "http://127.0.0.1:" + std::to_string(testing::free_port())});
  EXPECT_RUN(down, 1);
  EXPECT_NE(down.err.find("cannot open the WebSocket"), std::string::npos) << down.err;
  EXPECT_NE(down.err.find("hint: is ComfyUI running"), std::string::npos) << down.err;
}

TEST_F(Cli, ComfyRunConvertsTheEditorsFormatAndUploadsInputs) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  auto r = autopod({"comfy", "run", (k_workflows / "txt2img_editor.json").string(), "--url", fake.url(), "--out",
                    (dir / "ui").string()});
  EXPECT_RUN(r, 0);
  EXPECT_NE(r.err.find("from the editor's format to API format (7 nodes)"), std::string::npos) << r.err;
  auto sent = fake.submitted().at(0);
  EXPECT_EQ(sent["prompt"]["3"]["inputs"]["steps"], 25);
  EXPECT_TRUE(sent["extra_data"]["extra_pnginfo"]["workflow"].contains("nodes"));  // embedded in saved PNGs
  EXPECT_TRUE(std::filesystem::exists(dir / "ui/autopod/editor_00001_.png"));
  // A LoadImage naming a local file: uploaded, then referenced by its server name.
  ASSERT_TRUE(core::write_file_atomic(dir / "cat.png", "not really a png"));
  ASSERT_TRUE(core::write_file_atomic(dir / "invert.json", R"({"10": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
    "11": {"class_type": "ImageInvert", "inputs": {"image": ["10", 0]}},
    "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "inv"}}})"));
  auto up = autopod({"comfy", "run", (dir / "invert.json").string(), "--url", fake.url(), "--out", (dir / "inv").string()});
  EXPECT_RUN(up, 0);
  EXPECT_NE(up.err.find("uploaded"), std::string::npos) << up.err;
  EXPECT_EQ(*core::read_file(fake.base_dir() / "input/cat.png"), "not really a png");
  ASSERT_TRUE(core::write_file_atomic(dir / "dog.png", "another"));
  auto input = autopod({"comfy", "run", (dir / "invert.json").string(), "--url", fake.url(), "--input",
                        (dir / "dog.png").string(), "--out", (dir / "inv2").string()});
  EXPECT_RUN(input, 0);
  EXPECT_EQ(fake.submitted().back()["prompt"]["10"]["inputs"]["image"], "dog.png");
}

// The ComfyUI fake stands in for ComfyUI on the pod: reached through a real tunnel (ensured by
// the command itself) over the harness's sshd.
TEST_F(Cli, ComfyThroughTheTunnelToThePod) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  std::string local = std::to_string(testing::free_port());
  auto status = autopod({"comfy", "status", "--local-port", local, "--remote-port",
                         std::to_string(fake.port())});
  EXPECT_RUN(status, 0);
  EXPECT_NE(status.err.find("started tunnel"), std::string::npos) << status.err;
  EXPECT_NE(status.out.find("http://127.0.0.1:" + local), std::string::npos);
  auto info = autopod({"comfy", "info", "--local-port", local, "--remote-port",
                       std::to_string(fake.port()), "--json"});
  EXPECT_RUN(info, 0);
  EXPECT_EQ(json::parse(info.out)["comfyui_version"], "0.3.64");
  EXPECT_EQ(info.err.find("started tunnel"), std::string::npos);  // the tunnel was reused
  EXPECT_EQ(json::parse(autopod({"tunnel", "list", "--json"}).out)["tunnels"].size(), 1u);
  // A whole run through the tunnel: the WebSocket, the submit and the downloads.
  auto run = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--local-port", local,
                      "--remote-port", std::to_string(fake.port()), "--out", (dir / "pod-out").string()});
  EXPECT_RUN(run, 0);
  EXPECT_EQ(run.out, (dir / "pod-out/autopod/txt2img_00001_.png").string() + "\n");
  EXPECT_EQ(*core::read_file(dir / "pod-out/autopod/txt2img_00001_.png"),
            *core::read_file(fake.base_dir() / "output/autopod/txt2img_00001_.png"));
  EXPECT_FALSE(fake.saw_origin_header());
}

}  // namespace
}  // namespace autopod
