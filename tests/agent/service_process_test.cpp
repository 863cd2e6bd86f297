// `autopod agent` as a process: SIGKILL mid-run then a restart that finishes the task, the pod's
// ComfyUI through a real tunnel (RunPod sandbox + the harness's sshd), and detach/status/stop/token.

#include <gtest/gtest.h>
#include <signal.h>

#include "core/fs.hpp"
#include "sandbox/model_hubs.hpp"
#include "sandbox/runpod_sandbox.hpp"
#include "sandbox/sshd_harness.hpp"
#include "tests/agent/service_testing.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::SseReader;

struct AgentProcess : ::testing::Test {
  testing::TempDir dir;
  sandbox::ComfyFake fake;
  testing::OpenApi api;
  std::vector<std::string> env;
  std::unique_ptr<sandbox::SshdHarness> sshd;      // connect_pod()
  std::unique_ptr<sandbox::RunpodSandbox> runpod;  // after sshd: stopped first

  void SetUp() override {
    ASSERT_TRUE(fake.start());
    env = {"AUTOPOD_HOME=" + (dir / "home").string(), "AUTOPOD_PROVIDER=", "AUTOPOD_LOG_LEVEL="};
  }
  // A sandbox RunPod whose pods' ssh is the harness's sshd, its variables in `env`, and
  // `autopod connect --name comfy` done against it.
  void connect_pod() {
    auto started = sandbox::SshdHarness::start(dir / "sshd");
    ASSERT_TRUE(started) << started.error().describe();
    sshd = std::move(started).value();
    sandbox::SandboxOptions o;
    o.api_key = "rpa_agent_test";
    o.ssh_port = sshd->port();
    o.ssh_user = sshd->user();
    o.authorized_keys = sshd->authorized_keys();
    o.provisioning_time = o.starting_time = std::chrono::milliseconds(30);
    runpod = std::make_unique<sandbox::RunpodSandbox>(o);
    ASSERT_TRUE(runpod->start());
    env.insert(env.end(), {"RUNPOD_API_URL=" + runpod->url(), "RUNPOD_API_KEY=rpa_agent_test",
                           "AUTOPOD_POLL_MS=20"});
    auto connect = testing::run_autopod({"connect", "--name", "comfy", "--timeout", "30"}, env);
    ASSERT_EQ(connect.exit_code, 0) << connect.err;
  }
  // The agent in the foreground; ready once it prints its "listening on" line.
  std::unique_ptr<testing::Child> agent(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(testing::autopod_binary());
    argv.push_back("agent");
    argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
    argv.insert(argv.end(), args.begin(), args.end());
    auto child = testing::Child::start(argv, "listening on");
    EXPECT_TRUE(child) << child.error().describe();
    return child ? std::move(child).value() : nullptr;
  }
  static int port_of(const testing::Child& c) { return std::stoi(c.ready_line().substr(c.ready_line().rfind(':') + 1)); }
  std::string token() {
    auto t = *core::read_file(dir / "home/agent.token");
    return t.substr(0, t.size() - 1);
  }
  std::string submit(int port, const json& body) {
    auto r = testing::raw_request(port, "POST", "/v1/generations", token(), body.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    return r.json().value("taskId", "");
  }
  std::vector<testing::SseEvent> follow(int port, const std::string& id, const std::string& last = {}) {
    SseReader sse(port, "/v1/tasks/" + id + "/events", token(), last);
    std::vector<testing::SseEvent> out;
    while (auto e = sse.next())
      if (!e->event.empty()) {
        EXPECT_EQ(api.check_schema(json::parse(e->data), "Task"), "") << e->data;
        out.push_back(*e);
      }
    return out;
  }
};

TEST_F(AgentProcess, SigkillMidRunThenRestartFinishesTheTaskWithItsOutputs) {
  fake.set_step_delay(std::chrono::milliseconds(50));
  auto first = agent({"--url", fake.url()});
  ASSERT_TRUE(first);
  int port = port_of(*first);
  std::string id = submit(port, {{"workflow", testing::workflow("txt2img_api.json")}});
  std::string last;
  {
    SseReader sse(port, "/v1/tasks/" + id + "/events", token());
    while (auto e = sse.next())
      if (!e->event.empty()) {
        last = e->id;
        if (json::parse(e->data)["progress"]["currentValue"] == 4) break;
      }
  }
  ASSERT_EQ(::kill(first->pid(), SIGKILL), 0);
  first.reset();  // reaped
  auto second = agent({"--url", fake.url()});
  ASSERT_TRUE(second);
  int port2 = port_of(*second);
  auto rest = follow(port2, id, last);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back().event, "completed");
  EXPECT_EQ(fake.submitted().size(), 1u);
  auto t = testing::raw_request(port2, "GET", "/v1/tasks/" + id, token()).json();
  ASSERT_EQ(t["result"]["images"].size(), 1u);
  auto file = testing::raw_request(port2, "GET", t["result"]["images"][0]["url"].get<std::string>(), token());
  EXPECT_EQ(file.status, 200);
  EXPECT_EQ(file.body, *core::read_file(fake.base_dir() / "output/autopod/txt2img_00001_.png"));
}

TEST_F(AgentProcess, GenerationThroughATunnelToThePod) {
  ASSERT_NO_FATAL_FAILURE(connect_pod());
  std::string local = std::to_string(testing::free_port());
  auto a = agent({"--pod", "comfy", "--local-port", local, "--remote-port", std::to_string(fake.port())});
  ASSERT_TRUE(a);
  int port = port_of(*a);
  std::string id = submit(port, {{"workflow", testing::workflow("txt2img_api.json")}});
  EXPECT_EQ(follow(port, id).back().event, "completed");
  auto tunnels = json::parse(testing::run_autopod({"tunnel", "list", "--json"}, env).out)["tunnels"];
  ASSERT_EQ(tunnels.size(), 1u);  // the agent ensured it
  EXPECT_EQ(tunnels[0]["spec"]["pod_name"], "comfy");
  auto comfy = testing::raw_request(port, "GET", "/v1/pods/comfy/comfy", token());
  EXPECT_EQ(comfy.status, 200) << comfy.body;
  EXPECT_EQ(api.check("GET", "/v1/pods/{podId}/comfy", 200, comfy.json()), "") << comfy.body;
  EXPECT_EQ(comfy.json()["ready"], true);
  EXPECT_EQ(comfy.json()["url"], "http://127.0.0.1:" + local);
  auto pods = testing::raw_request(port, "GET", "/v1/pods", token());
  EXPECT_EQ(pods.status, 200);
  EXPECT_EQ(api.check("GET", "/v1/pods", 200, pods.json()), "");
  ASSERT_EQ(pods.json()["pods"].size(), 1u);
  EXPECT_EQ(pods.json()["pods"][0]["name"], "comfy");
  a.reset();
  testing::run_autopod({"tunnel", "stop-all"}, env);
}

// A model-sync task through `autopod agent --pod`: the pod-side program over libssh2 exec
// to the harness's sshd (the pod's models root from config.yaml), from the hub fakes.
TEST_F(AgentProcess, ModelSyncOntoThePodOverSsh) {
  sandbox::StorageServer storage{sandbox::StorageOptions{0, {}, false}};
  sandbox::HfFake hf{storage};
  ASSERT_TRUE(storage.start());
  ASSERT_TRUE(hf.start());
  std::string bytes(3 << 20, 'm');
  hf.add_lfs_file("org/flux", "flux.safetensors", bytes);
  auto root = dir / "pod-models";
  std::filesystem::create_directories(dir / "home");
  ASSERT_TRUE(core::write_file_atomic(dir / "home/config.yaml",
                                      "pod:\n  models_root: " + root.string() + "\n", 0600));
  env.push_back("HF_ENDPOINT=" + hf.url());
  ASSERT_NO_FATAL_FAILURE(connect_pod());
  auto a = agent({"--pod", "comfy"});
  ASSERT_TRUE(a);
  int port = port_of(*a);
  auto r = testing::raw_request(port, "POST", "/v1/models/sync", token(),
                                json{{"manifest",
                                      "models:\n  - source: hf://org/flux/flux.safetensors\n"
                                      "    folder: diffusion_models\n"}}
                                    .dump());
  ASSERT_EQ(r.status, 202) << r.body;
  std::string id = r.json().value("taskId", "");
  auto events = follow(port, id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "completed") << events.back().data;
  auto t = testing::raw_request(port, "GET", "/v1/tasks/" + id, token()).json();
  EXPECT_EQ(t["result"]["pod"], "comfy");
  ASSERT_EQ(t["result"]["files"].size(), 1u) << t.dump(2);
  EXPECT_EQ(t["result"]["files"][0]["path"], (root / "diffusion_models/flux.safetensors").string());
  auto placed = core::read_file(root / "diffusion_models/flux.safetensors");
  EXPECT_TRUE(placed && *placed == bytes);
  auto tasks =
      testing::run_autopod({"models", "tasks", "--json"}, env);  // the per-file task, shared
  EXPECT_NE(tasks.out.find("\"state\":\"done\""), std::string::npos) << tasks.out;
}

TEST_F(AgentProcess, TokenDetachStatusAndStop) {
  auto tok = testing::run_autopod({"agent", "token"}, env);
  ASSERT_EQ(tok.exit_code, 0) << tok.err;
  EXPECT_EQ(tok.out, token() + "\n");
  EXPECT_EQ(core::file_mode(dir / "home/agent.token"), 0600);
  EXPECT_EQ(testing::run_autopod({"agent", "token"}, env).out, tok.out);  // made once
  auto secret = testing::run_autopod({"agent", "token", "--webhook"}, env);
  EXPECT_EQ(secret.out.size(), 65u);
  EXPECT_NE(secret.out, tok.out);
  EXPECT_EQ(core::file_mode(dir / "home/agent.webhook-secret"), 0600);

  auto started = testing::run_autopod({"agent", "--detach", "--listen", "127.0.0.1:0", "--url", fake.url()}, env);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  ASSERT_EQ(started.out.rfind("listening on http://127.0.0.1:", 0), 0u) << started.out;
  int port = std::stoi(started.out.substr(started.out.rfind(':') + 1));
  EXPECT_EQ(testing::raw_request(port, "GET", "/health", "").status, 200);
  auto status = testing::run_autopod({"agent", "status", "--json"}, env);
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(json::parse(status.out)["healthy"], true);
  std::string id = submit(port, {{"workflow", testing::workflow("empty_image_api.json")}});
  EXPECT_EQ(follow(port, id).back().event, "completed");
  auto log = core::read_file(dir / "home/logs/agent.log");
  ASSERT_TRUE(log);
  EXPECT_EQ(log->find(token()), std::string::npos) << "the token is never logged";
  EXPECT_EQ(testing::run_autopod({"agent", "stop"}, env).exit_code, 0);
  EXPECT_NE(testing::raw_request(port, "GET", "/health", "").status, 200);
  EXPECT_EQ(testing::run_autopod({"agent", "status"}, env).exit_code, 3);
  auto again = testing::run_autopod({"agent", "stop"}, env);
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.err.find("nothing to stop"), std::string::npos);
}

}  // namespace
}  // namespace autopod
