// The agent service end to end against the ComfyUI fake (reached by URL; tests/agent/
// service_process_test.cpp goes through a tunnel): submit, follow over SSE with a raw reader,
// reconnect with Last-Event-ID, outputs, listing, cancelling, and every bad request.

#include <gtest/gtest.h>

#include <thread>

#include "core/fs.hpp"
#include "tests/agent/service_testing.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::RawResponse;
using testing::ServiceTest;
using testing::SseReader;

TEST_F(ServiceTest, SubmitFollowReconnectAndFetchTheOutput) {
  fake.set_step_delay(std::chrono::milliseconds(5));
  start_service();
  std::string id = submit({{"workflow", testing::workflow("txt2img_api.json")},
                           {"set", {"KSampler.steps=8", "Positive.text=a red fox"}},
                           {"metadata", {{"user", "u-1"}}}});
  ASSERT_FALSE(id.empty());
  // Read three events, hang up, and come back with the last id seen.
  std::vector<testing::SseEvent> first;
  {
    SseReader sse(port(), "/v1/tasks/" + id + "/events", token);
    ASSERT_EQ(sse.status(), 200);
    while (first.size() < 3) {
      auto e = sse.next();
      ASSERT_TRUE(e);
      if (!e->event.empty()) first.push_back(*e);
    }
  }
  auto rest = follow(id, first.back().id);
  ASSERT_FALSE(rest.empty());
  std::vector<testing::SseEvent> all = first;
  all.insert(all.end(), rest.begin(), rest.end());
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].id, std::to_string(i + 1)) << "no gap, no repeat";
  EXPECT_EQ(all.back().event, "completed");
  for (std::size_t i = 0; i + 1 < all.size(); ++i) EXPECT_EQ(all[i].event, "progress");
  bool sampling = false;
  for (const auto& e : all) {
    auto p = json::parse(e.data)["progress"];
    if (p["currentStep"] == "Sampling image..." && p["maxValue"] == 8) sampling = true;
  }
  EXPECT_TRUE(sampling);

  json t = task(id);
  EXPECT_EQ(t["status"], "completed");
  EXPECT_EQ(t["metadata"]["user"], "u-1");
  EXPECT_EQ(t["progress"]["percentage"], 100);
  ASSERT_EQ(t["result"]["images"].size(), 1u);
  json image = t["result"]["images"][0];
  EXPECT_EQ(image["filename"], "txt2img_00001_.png");
  EXPECT_EQ(image["width"], 8);
  EXPECT_EQ(t["result"]["promptId"], fake.submitted().size() == 1 ? t["result"]["promptId"] : json());
  EXPECT_EQ(fake.submitted().at(0)["prompt"]["3"]["inputs"]["steps"], 8);
  EXPECT_EQ(fake.submitted().at(0)["prompt"]["6"]["inputs"]["text"], "a red fox");

  auto file = call("GET", image["url"].get<std::string>());
  EXPECT_EQ(file.status, 200);
  EXPECT_EQ(file.headers["content-type"], "image/png");
  EXPECT_EQ(file.body, *core::read_file(fake.base_dir() / "output/autopod/txt2img_00001_.png"));
  EXPECT_TRUE(std::filesystem::exists(options.home.outputs() / id / "autopod/txt2img_00001_.png"));
  auto part = call("GET", image["url"].get<std::string>(), "", {"Range: bytes=1-3"});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, "PNG");
  EXPECT_EQ(part.headers["content-range"], "bytes 1-3/" + std::to_string(file.body.size()));
  EXPECT_EQ(call("GET", image["url"].get<std::string>(), "", {"Range: bytes=99999-"}).status, 416);

  // The older route gives the same stream; a client that saw the end gets nothing more.
  SseReader old(port(), "/progress/" + id, token);
  EXPECT_EQ(old.status(), 200);
  int n = 0;
  while (auto e = old.next()) n += !e->event.empty();
  EXPECT_EQ(n, static_cast<int>(all.size()));
  EXPECT_TRUE(follow(id, all.back().id).empty());
}

TEST_F(ServiceTest, SavedWorkflowListFiltersAndPages) {
  ASSERT_TRUE(core::ensure_dir(options.home.workflows()));
  ASSERT_TRUE(core::write_file_atomic(options.home.workflows() / "blank.json", testing::workflow("empty_image_api.json").dump()));
  start_service();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(submit({{"workflow", "blank"}}));
  for (const auto& id : ids) EXPECT_EQ(follow(id).back().event, "completed");
  EXPECT_EQ(task(ids[0])["result"]["workflow"], "blank");
  auto page = call("GET", "/v1/tasks?limit=2&status=completed");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(api.check("GET", "/v1/tasks", 200, page.json()), "");
  EXPECT_EQ(page.json()["total"], 3);
  ASSERT_EQ(page.json()["tasks"].size(), 2u);
  EXPECT_EQ(page.json()["tasks"][0]["taskId"], ids[2]);  // newest first
  EXPECT_EQ(page.json()["nextOffset"], 2);
  auto second = call("GET", "/v1/tasks?limit=2&offset=2").json();
  ASSERT_EQ(second["tasks"].size(), 1u);
  EXPECT_EQ(second["tasks"][0]["taskId"], ids[0]);
  EXPECT_EQ(call("GET", "/v1/tasks?status=error").json()["total"], 0);
  EXPECT_EQ(call("GET", "/v1/tasks?kind=model-sync").json()["total"], 0);
}

TEST_F(ServiceTest, CancelQueuedThenRunning) {
  start_service();
  fake.hold_queue(true);
  std::string queued = submit({{"workflow", testing::workflow("empty_image_api.json")}});
  // Wait until its prompt is in ComfyUI's queue (the task record names it).
  ASSERT_TRUE(testing::wait_for_change(options.home.tasks(), [&] {
    auto text = core::read_file(options.home.tasks() / (queued + ".json"));
    return text && !json::parse(*text)["promptIds"].empty();
  }, std::chrono::seconds(20)));
  auto del = call("DELETE", "/v1/tasks/" + queued);
  EXPECT_EQ(del.status, 200) << del.body;
  EXPECT_EQ(api.check("DELETE", "/v1/tasks/{taskId}", 200, del.json()), "");
  EXPECT_EQ(del.json()["status"], "cancelled");
  EXPECT_EQ(follow(queued).back().event, "cancelled");
  auto again = call("DELETE", "/v1/tasks/" + queued);
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(api.check("DELETE", "/v1/tasks/{taskId}", 409, again.json()), "");
  fake.hold_queue(false);

  fake.set_step_delay(std::chrono::milliseconds(100));
  std::string running = submit({{"workflow", testing::workflow("txt2img_api.json")}});
  SseReader sse(port(), "/v1/tasks/" + running + "/events", token);
  while (auto e = sse.next())
    if (json::parse(e->data)["progress"]["currentStep"] == "Sampling image...") break;
  EXPECT_EQ(call("DELETE", "/v1/tasks/" + running).status, 200);
  std::string last;
  while (auto e = sse.next()) last = e->event;
  EXPECT_EQ(last, "cancelled");
  EXPECT_EQ(fake.interrupts(), 1);
  EXPECT_EQ(task(running)["status"], "cancelled");
  EXPECT_EQ(call("GET", "/v1/tasks?status=cancelled").json()["total"], 2);
}

TEST_F(ServiceTest, EveryBadRequestIsAJsonErrorAndTheServiceKeepsServing) {
  options.max_body_bytes = 1 << 20;
  start_service();
  auto good = [&] {
    auto r = call("GET", "/v1/tasks");
    EXPECT_EQ(r.status, 200);
  };
  auto expect_error = [&](const RawResponse& r, int status, const std::string& method, const std::string& path) {
    EXPECT_EQ(r.status, status) << method << " " << path << ": " << r.body;
    EXPECT_TRUE(r.json()["error"]["message"].is_string()) << r.body;
    EXPECT_EQ(api.check(method, path, status, r.json()), "") << r.body;
    good();
  };
  expect_error(testing::raw_request(port(), "GET", "/v1/tasks", ""), 401, "GET", "/v1/tasks");
  expect_error(testing::raw_request(port(), "GET", "/v1/tasks", token + "x"), 401, "GET", "/v1/tasks");
  expect_error(testing::raw_request(port(), "GET", "/v1/tasks", token.substr(1)), 401, "GET", "/v1/tasks");
  expect_error(call("POST", "/v1/generations", "{\"workflow\": "), 400, "POST", "/v1/generations");
  expect_error(call("POST", "/v1/generations", "[1, 2]"), 400, "POST", "/v1/generations");
  expect_error(call("POST", "/v1/generations", "{}"), 400, "POST", "/v1/generations");
  expect_error(call("POST", "/v1/generations", R"({"workflow": "nope"})"), 400, "POST", "/v1/generations");
  expect_error(call("POST", "/v1/generations", R"({"workflow": "../../etc/passwd"})"), 400, "POST", "/v1/generations");
  expect_error(call("POST", "/v1/generations", R"({"workflow": {"1": {"inputs": {}}}})"), 400, "POST", "/v1/generations");
  json wf = testing::workflow("txt2img_api.json");
  expect_error(call("POST", "/v1/generations", json{{"workflow", wf}, {"set", {"Nobody.seed=1"}}}.dump()), 400, "POST",
               "/v1/generations");
  expect_error(call("POST", "/v1/generations", json{{"workflow", wf}, {"count", 0}}.dump()), 400, "POST",
               "/v1/generations");
  expect_error(call("POST", "/v1/generations", json{{"workflow", wf}, {"webhook", "ftp://x"}}.dump()), 400, "POST",
               "/v1/generations");
  expect_error(call("POST", "/v1/generations", std::string(2 << 20, ' ')), 413, "POST", "/v1/generations");
  expect_error(call("GET", "/v1/tasks/0123456789abcdef"), 404, "GET", "/v1/tasks/{taskId}");
  expect_error(call("GET", "/v1/tasks?status=done"), 400, "GET", "/v1/tasks");
  expect_error(call("GET", "/v1/outputs/0123456789abcdef/..%2F..%2Fagent.token"), 404, "GET", "/v1/outputs/{taskId}/{file}");
  expect_error(call("GET", "/v1/outputs/..%2Ftasks/x.json"), 404, "GET", "/v1/outputs/{taskId}/{file}");
  expect_error(call("POST", "/v1/models/sync", "{}"), 400, "POST", "/v1/models/sync");
  auto garbage = testing::raw_request(port(), "NOT HTTP", "", token);
  EXPECT_EQ(garbage.status, 400);
  good();
  // A workflow ComfyUI rejects: the task ends `error` with every node error.
  std::string id = submit({{"workflow", wf}, {"set", {"4.ckpt_name=nope.safetensors", "5.width=0"}}});
  auto events = follow(id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().event, "error");
  json err = task(id)["error"];
  EXPECT_EQ(err["message"].get<std::string>().rfind("comfyui rejected the workflow", 0), 0u) << err;
  EXPECT_NE(err["details"].get<std::string>().find("node 4 (CheckpointLoaderSimple) input ckpt_name"), std::string::npos)
      << err;
  EXPECT_NE(err["details"].get<std::string>().find("node 5 (EmptyLatentImage) input width"), std::string::npos);
  // A node that raises: its id and type.
  std::string raised = submit({{"workflow", json::parse(R"({"30": {"class_type": "EmptyImage", "inputs": {"width": 32,
      "height": 32, "batch_size": 1, "color": 140}}, "31": {"class_type": "Canny", "inputs": {"image": ["30", 0],
      "low_threshold": 0.4, "high_threshold": 0.8}}, "32": {"class_type": "SaveImage", "inputs": {"images": ["31", 0],
      "filename_prefix": "acc_err"}}})")}});
  EXPECT_EQ(follow(raised).back().event, "error");
  json raised_err = task(raised)["error"];
  EXPECT_EQ(raised_err["nodeId"], "31");
  EXPECT_EQ(raised_err["nodeType"], "Canny");
  EXPECT_NE(raised_err["message"].get<std::string>().find("StubUnavailable"), std::string::npos) << raised_err;
  auto health = testing::raw_request(port(), "GET", "/health", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(api.check("GET", "/health", 200, health.json()), "");
}

TEST_F(ServiceTest, HeartbeatsKeepAQuietStreamAliveAndStopEndsItWithShutdown) {
  options.heartbeat = std::chrono::milliseconds(50);
  start_service();
  fake.hold_queue(true);
  std::string id = submit({{"workflow", testing::workflow("empty_image_api.json")}});
  SseReader sse(port(), "/v1/tasks/" + id + "/events", token);
  ASSERT_EQ(sse.status(), 200);
  // Nothing happens while ComfyUI holds the queue: only heartbeats. Then the agent stops.
  int heartbeats = 0;
  std::string last;
  std::thread stopper;
  while (auto e = sse.next()) {
    heartbeats += static_cast<int>(e->comments.size());
    if (!e->event.empty()) last = e->event;
    if (heartbeats >= 2 && !stopper.joinable()) stopper = std::thread([&] { service->stop(); });
  }
  ASSERT_TRUE(stopper.joinable());
  stopper.join();
  EXPECT_GE(heartbeats, 2);
  EXPECT_EQ(last, "shutdown");
  // The task is left as it was, for the next start to pick up.
  auto record = json::parse(*core::read_file(options.home.tasks() / (id + ".json")));
  EXPECT_NE(record["status"], "completed");
  EXPECT_EQ(record["promptIds"].size(), 1u);
}

}  // namespace
}  // namespace autopod
