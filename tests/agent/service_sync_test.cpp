// Model-sync tasks (POST /v1/models/sync) end to end: the pod-side program run through `sh -c`
// on this machine (the pod's models root a temp dir), as tests/models/pod_test.cpp does, against
// the sandbox's storage, Hugging Face and Civitai fakes; every answer and event checked against
// the OpenAPI file.

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "core/fs.hpp"
#include "core/process.hpp"
#include "models/pod.hpp"
#include "sandbox/http_server.hpp"
#include "sandbox/model_hubs.hpp"
#include "tests/agent/service_testing.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::ServiceTest;
using testing::random_bytes;
using testing::slurp;
using testing::SseReader;

// A pod job's saved request (ID.request.json), kept beside its state (ID.json) for a resume.
bool is_request(const std::filesystem::path& p) {
  return p.filename().string().ends_with(".request.json");
}

struct SyncService : ServiceTest {
  sandbox::StorageServer storage{sandbox::StorageOptions{0, {}, false}};
  sandbox::HfFake hf{storage};
  sandbox::CivitaiFake civitai{storage};
  std::filesystem::path root;
  std::string big = random_bytes(24 << 20, 41), lora = random_bytes(70000, 42), small = random_bytes(5000, 43);
  std::shared_ptr<std::atomic<int>> unreachable = std::make_shared<std::atomic<int>>(0);  // next N execs fail
  models::PodExec exec = [down = unreachable](const std::string& command, const std::string& input) {
    if (*down > 0 && (*down)-- > 0)
      return core::run_capture({"sh", "-c", "echo 'ssh: connection reset' >&2; exit 255"}, "");
    return core::run_capture({"sh", "-c", command}, input);
  };

  void SetUp() override {
    ServiceTest::SetUp();
    ASSERT_TRUE(storage.start());
    ASSERT_TRUE(hf.start());
    ASSERT_TRUE(civitai.start());
    hf.add_lfs_file("org/flux", "flux.safetensors", big);
    civitai.add_version(
        "10", "20", "LORA",
        {sandbox::CivitaiFile{"30", "style.safetensors", "Model", true, lora, "SafeTensor"}});
    storage.put("up.pth", small);
    root = dir / "pod-models";
    pods->models = models::SyncTarget{"sandbox", exec, root};
    models::Endpoints ep;
    ep.hf = hf.url(), ep.civitai = civitai.url();
    options.model_endpoints = ep;
    options.sync_poll = std::chrono::milliseconds(100);
  }
  std::string manifest() const {
    return "models:\n  - source: hf://org/flux/flux.safetensors\n    folder: diffusion_models\n"
           "  - source: civitai:20\n";
  }
  std::string post(const json& body) {
    auto r = call("POST", "/v1/models/sync", body.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    EXPECT_EQ(api.check("POST", "/v1/models/sync", r.status, r.json()), "");
    return r.json().value("taskId", "");
  }
  // The first progress event that shows bytes on disk.
  json first_bytes(const std::string& id) {
    SseReader sse(port(), "/v1/tasks/" + id + "/events", token);
    while (auto e = sse.next()) {
      if (e->event.empty())
        continue;
      json t = json::parse(e->data);
      if (t["progress"].value("bytes", 0) > 0 || e->event != "progress")
        return t;
    }
    return json();
  }
  // Waits for the pod job to end (its state file on the pod, read as `models tasks` does).
  json pod_job_end(const std::string& job) {
    for (int i = 0; i < 300; ++i) {
      auto st = models::pod_status(exec, root.string(), job);
      if (st && st->value("state", "") != "running")
        return *st;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return json{{"state", "still running"}};
  }
};

TEST_F(SyncService, ASyncTaskReportsBytesAndPlacesTheFilesAndTheSecondIsUpToDate) {
  storage.set_rate(8 << 20);  // per connection: long enough for several progress looks
  start_service();
  std::string id = post({{"manifest", manifest()}, {"metadata", {{"why", "test"}}}});
  auto events = follow(id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "completed") << events.back().data;
  bool partial = false;
  for (const auto& e : events) {
    auto p = json::parse(e.data)["progress"];
    if (e.event == "progress" && p.value("bytes", 0) > 0 &&
        p.value("bytes", 0) < p.value("total", 0)) {
      partial = true;
      EXPECT_EQ(p["total"], static_cast<std::int64_t>(big.size() + lora.size()));
      EXPECT_GT(p.value("bytesPerSecond", 0), 0);
      EXPECT_GT(p["percentage"].get<int>(), 0);
      EXPECT_LT(p["percentage"].get<int>(), 100);
      EXPECT_EQ(p["maxValue"], 2);
    }
  }
  EXPECT_TRUE(partial) << "no progress event showed bytes under way";
  json t = task(id);
  EXPECT_EQ(t["kind"], "model-sync");
  EXPECT_EQ(t["metadata"]["why"], "test");
  ASSERT_EQ(t["result"]["files"].size(), 2u) << t.dump(2);
  EXPECT_EQ(t["result"]["downloadedBytes"], static_cast<std::int64_t>(big.size() + lora.size()));
  EXPECT_EQ(t["result"]["pod"], "sandbox");
  for (const auto& f : t["result"]["files"])
    EXPECT_EQ(f["state"], "downloaded");
  EXPECT_TRUE(slurp(root / "diffusion_models/flux.safetensors") == big);
  EXPECT_TRUE(slurp(root / "loras/style.safetensors") == lora);
  EXPECT_EQ(storage.authorization_seen(), 0);

  auto list = call("GET", "/v1/tasks?kind=model-sync");
  EXPECT_EQ(api.check("GET", "/v1/tasks", list.status, list.json()), "");
  EXPECT_EQ(list.json()["total"], 1);

  auto sent = storage.bytes_sent();
  std::string again =
      post({{"manifest",
             json::object({{"models", json::array({{{"source", "hf://org/flux/flux.safetensors"},
                                                    {"folder", "diffusion_models"}}})}})}});
  EXPECT_EQ(follow(again).back().event, "completed");
  json t2 = task(again);
  ASSERT_EQ(t2["result"]["files"].size(), 1u);
  EXPECT_EQ(t2["result"]["files"][0]["state"], "present");
  EXPECT_EQ(t2["result"]["downloadedBytes"], 0);
  EXPECT_EQ(storage.bytes_sent(), sent);
}

// for_workflow: the committed editor workflow against a manifest object; its embedded url is
// fetched, and the file nothing resolves is listed in result.missing with its folder.
TEST_F(SyncService, ForWorkflowSyncsWhatTheWorkflowNeedsAndListsWhatIsMissing) {
  hf.add_lfs_file("comfyanonymous/flux_text_encoders", "clip_l.safetensors", small);
  hf.add_lfs_file("org/vae", "ae.safetensors", small);
  start_service();
  json manifest = {
      {"models", json::array({{{"source", "hf://org/flux/flux.safetensors"},
                               {"folder", "diffusion_models"},
                               {"name", "flux1-schnell.safetensors"}},
                              {{"source", "civitai:20"}},
                              {{"source", storage.plain_url("up.pth")},
                               {"folder", "upscale_models"},
                               {"name", "4x-UltraSharp.pth"}},
                              {{"source", "hf://org/vae/ae.safetensors"}, {"folder", "vae"}}})}};
  std::string id = post({{"manifest", manifest},
                         {"for_workflow", testing::workflow("flux_lora_models_editor.json")}});
  EXPECT_EQ(follow(id).back().event, "completed");
  json t = task(id);
  EXPECT_EQ(t["result"]["files"].size(), 5u) << t.dump(2);
  ASSERT_EQ(t["result"]["missing"].size(), 1u) << t.dump(2);
  EXPECT_EQ(t["result"]["missing"][0]["folder"], "text_encoders");
  EXPECT_EQ(t["result"]["missing"][0]["name"], "t5xxl_fp8_e4m3fn.safetensors");
  EXPECT_TRUE(slurp(root / "text_encoders/clip_l.safetensors") == small);
  EXPECT_TRUE(slurp(root / "diffusion_models/flux1-schnell.safetensors") == big);
}

TEST_F(SyncService, DeleteCancelsThePodJobAndRemovesItsPartialFiles) {
  storage.set_rate(1 << 20);
  start_service();
  std::string id = post({{"manifest", manifest()}});
  json seen = first_bytes(id);
  ASSERT_EQ(seen.value("status", ""), "in-progress") << seen.dump();
  auto r = call("DELETE", "/v1/tasks/" + id);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(api.check("DELETE", "/v1/tasks/{taskId}", r.status, r.json()), "");
  EXPECT_EQ(r.json()["status"], "cancelled");
  auto events = follow(id);
  EXPECT_EQ(events.back().event, "cancelled");
  std::string job;
  for (const auto& f : std::filesystem::directory_iterator(root / ".autopod/jobs"))
    if (!is_request(f.path()))  // ID.json, beside its ID.request.json
      job = f.path().stem().string();
  ASSERT_FALSE(job.empty());
  EXPECT_EQ(pod_job_end(job).value("state", ""), "cancelled");
  EXPECT_FALSE(std::filesystem::exists(root / "diffusion_models/flux.safetensors"));
  for (const auto& f : std::filesystem::recursive_directory_iterator(root))
    EXPECT_EQ(f.path().string().find(".part"), std::string::npos) << f.path();
  EXPECT_EQ(call("DELETE", "/v1/tasks/" + id).status, 409);
}

// The agent stops mid-download; the pod job runs on; the next agent re-attaches to it and ends
// the task completed, its event ids carrying on.
TEST_F(SyncService, ATaskSurvivesARestartByReattachingToThePodJob) {
  storage.set_rate(4 << 20);
  start_service();
  std::string id = post({{"manifest", manifest()}});
  ASSERT_EQ(first_bytes(id).value("status", ""), "in-progress");
  service->stop();
  auto before = json::parse(*core::read_file(options.home.tasks() / (id + ".json")));
  ASSERT_FALSE(before["sync"].value("job", "").empty()) << before.dump(2);
  start_service();
  auto events = follow(id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "completed") << events.back().data;
  EXPECT_EQ(events.front().id, "1");  // replayed from the start, ids kept across the restart
  EXPECT_EQ(task(id)["result"]["files"].size(), 2u);
  EXPECT_EQ(task(id)["result"]["job"], before["sync"]["job"]);
  int jobs = 0;  // re-attached, not planned and started again
  for (const auto& f : std::filesystem::directory_iterator(root / ".autopod/jobs"))
    jobs += f.path().extension() == ".json" && !is_request(f.path());
  EXPECT_EQ(jobs, 1);
  EXPECT_TRUE(slurp(root / "diffusion_models/flux.safetensors") == big);
}

// The pod is unreachable for a few looks mid-download (ssh exits 255): the task rides it out.
TEST_F(SyncService, AFewFailedLooksAtThePodJobDoNotFailTheTask) {
  storage.set_rate(4 << 20);
  start_service();
  std::string id = post({{"manifest", manifest()}});
  ASSERT_EQ(first_bytes(id).value("status", ""), "in-progress");
  *unreachable = 5;
  auto events = follow(id);
  EXPECT_EQ(events.back().event, "completed") << events.back().data;
  EXPECT_EQ(unreachable->load(), 0);  // the looks did fail meanwhile
  EXPECT_TRUE(slurp(root / "diffusion_models/flux.safetensors") == big);
}

// Webhooks as for generations: each state change POSTed with the task as body, signed.
TEST_F(SyncService, WebhooksCarryTheSyncTaskSigned) {
  start_service();
  std::string secret = *core::read_file(options.home.webhook_secret());
  secret.pop_back();
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<json> received;
  sandbox::HttpServer receiver([&](const sandbox::HttpExchange& x) {
    std::string sig = x.headers.count("x-autopod-signature") ? x.headers.at("x-autopod-signature") : "";
    auto comma = sig.find(",v1=");
    bool ok = sig.rfind("t=", 0) == 0 && comma != std::string::npos &&
              sig.substr(comma + 4) == testing::hmac_hex(secret, sig.substr(2, comma - 2) + "." + x.body);
    std::lock_guard lock(mutex);
    received.push_back({{"event", x.headers.count("x-autopod-event") ? x.headers.at("x-autopod-event") : ""},
                        {"signed", ok}, {"body", json::parse(x.body, nullptr, false)}});
    cv.notify_all();
    return sandbox::HttpReply{};
  });
  ASSERT_TRUE(receiver.start());
  std::string id = post({{"manifest", manifest()}, {"webhook", receiver.url() + "/hook"}});
  EXPECT_EQ(follow(id).back().event, "completed");
  std::unique_lock lock(mutex);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] {
    return std::any_of(received.begin(), received.end(), [](const json& r) { return r["event"] == "completed"; });
  }));
  for (const auto& r : received) {
    EXPECT_TRUE(r["signed"].get<bool>()) << r;
    EXPECT_EQ(api.check_schema(r["body"], "Task"), "") << r;
    EXPECT_EQ(r["body"]["kind"], "model-sync");
  }
  EXPECT_EQ(received.back()["body"]["result"]["files"].size(), 2u);
}

TEST_F(SyncService, BadSyncRequestsAreJsonErrors) {
  start_service();
  auto check = [&](const std::string& body, const std::string& says) {
    auto r = call("POST", "/v1/models/sync", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_EQ(api.check("POST", "/v1/models/sync", r.status, r.json()), "");
    EXPECT_NE(r.body.find(says), std::string::npos) << r.body;
  };
  check("{}", "manifest or for_workflow is required");
  check(R"({"manifest": "models:\n  - source: hf://o/r/f.safetensors\n    folder: nowhere\n"})",
        "nowhere");
  check(R"({"manifest": 7})", "manifest must be");
  check(R"({"for_workflow": "no-such-saved-workflow"})", "no saved workflow");
  check(R"({"manifest": {"models": []}, "pod": 3})", "pod must be");
  EXPECT_EQ(call("GET", "/v1/models/sync").status, 405);
}

}  // namespace
}  // namespace autopod
