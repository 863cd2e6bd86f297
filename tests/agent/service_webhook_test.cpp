// Webhooks (signed, retried, isolated per task) and recovery across a restart of the service.

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "core/fs.hpp"
#include "sandbox/http_server.hpp"
#include "tests/agent/service_testing.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::ServiceTest;
using testing::SseReader;

// Records every webhook, checking its signature with the agent's secret on the way in.
struct Receiver {
  std::string secret;
  int fail_first = 0;
  std::chrono::milliseconds hang{0};
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<json> received;  // {event, eventId, signed_ok, body}
  int requests = 0;
  sandbox::HttpServer server{[this](const sandbox::HttpExchange& x) { return on(x); }};

  sandbox::HttpReply on(const sandbox::HttpExchange& x) {
    std::string sig = x.headers.count("x-autopod-signature") ? x.headers.at("x-autopod-signature") : "";
    auto comma = sig.find(",v1=");
    bool ok = sig.rfind("t=", 0) == 0 && comma != std::string::npos &&
              sig.substr(comma + 4) == testing::hmac_hex(secret, sig.substr(2, comma - 2) + "." + x.body);
    std::lock_guard lock(mutex);
    ++requests;
    sandbox::HttpReply reply;
    reply.delay = hang;
    if (requests <= fail_first) {
      reply.status = 500;
      return reply;
    }
    received.push_back({{"event", x.headers.count("x-autopod-event") ? x.headers.at("x-autopod-event") : ""},
                        {"signed", ok}, {"body", json::parse(x.body, nullptr, false)}});
    cv.notify_all();
    return reply;
  }
  bool wait_for(const std::string& event) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] {
      return std::any_of(received.begin(), received.end(), [&](const json& r) { return r["event"] == event; });
    });
  }
};

TEST_F(ServiceTest, WebhooksAreSignedRetriedAndAHangingReceiverDelaysNoOtherTask) {
  start_service();
  std::string secret = *core::read_file(options.home.webhook_secret());
  secret.pop_back();
  Receiver flaky, hanging;
  flaky.secret = hanging.secret = secret;
  flaky.fail_first = 2;
  hanging.hang = std::chrono::milliseconds(1500);  // past the agent's 500 ms limit per attempt
  ASSERT_TRUE(flaky.server.start());
  ASSERT_TRUE(hanging.server.start());

  std::string slow = submit({{"workflow", testing::workflow("empty_image_api.json")},
                             {"webhook", hanging.server.url() + "/hook"}});
  std::string quick = submit({{"workflow", testing::workflow("empty_image_api.json")},
                              {"webhook", flaky.server.url() + "/hook"}});
  // The event streams of both tasks end on time, whatever the hanging receiver does.
  EXPECT_EQ(follow(slow).back().event, "completed");
  EXPECT_EQ(follow(quick).back().event, "completed");
  ASSERT_TRUE(flaky.wait_for("completed"));
  {
    std::lock_guard lock(flaky.mutex);
    for (const auto& r : flaky.received) {
      EXPECT_TRUE(r["signed"].get<bool>()) << r;
      EXPECT_EQ(api.check_schema(r["body"], "Task"), "") << r;
      EXPECT_EQ(r["body"]["taskId"], quick);
    }
    EXPECT_EQ(flaky.received.back()["body"]["status"], "completed");
  }
  auto attempts = call("GET", "/v1/tasks/" + quick + "/webhooks");
  ASSERT_EQ(attempts.status, 200);
  EXPECT_EQ(api.check("GET", "/v1/tasks/{taskId}/webhooks", 200, attempts.json()), "") << attempts.body;
  json a = attempts.json()["attempts"];
  ASSERT_GE(a.size(), 3u) << a;
  EXPECT_EQ(a[0]["status"], 500);
  EXPECT_EQ(a[0]["outcome"], "retrying");
  EXPECT_EQ(a[1]["outcome"], "retrying");
  EXPECT_EQ(a[2]["outcome"], "delivered");
  EXPECT_EQ(a[2]["attempt"], 3);
  // The hanging receiver's task: attempts that timed out, still being retried.
  json b;
  ASSERT_TRUE(testing::wait_for_change(options.home.tasks(), [&] {
    b = call("GET", "/v1/tasks/" + slow + "/webhooks").json()["attempts"];
    return !b.empty();
  }, std::chrono::seconds(20)));
  EXPECT_TRUE(b[0]["status"].is_null()) << b;
  EXPECT_FALSE(b[0]["error"].is_null()) << b;
  service->stop();  // before the receivers go away
}

TEST_F(ServiceTest, AFourHundredIsNotRetried) {
  start_service();
  sandbox::HttpServer refusing([](const sandbox::HttpExchange&) { return sandbox::HttpReply{404, {}, "no"}; });
  ASSERT_TRUE(refusing.start());
  std::string id = submit({{"workflow", testing::workflow("empty_image_api.json")}, {"webhook", refusing.url()}});
  EXPECT_EQ(follow(id).back().event, "completed");
  ASSERT_TRUE(testing::wait_for_change(options.home.tasks(), [&] {
    auto a = call("GET", "/v1/tasks/" + id + "/webhooks").json()["attempts"];
    return std::any_of(a.begin(), a.end(), [](const json& x) { return x["event"] == "completed"; });
  }, std::chrono::seconds(20)));
  json attempts = call("GET", "/v1/tasks/" + id + "/webhooks").json()["attempts"];
  for (const auto& x : attempts) {
    EXPECT_EQ(x["outcome"], "failed");
    EXPECT_EQ(x["attempt"], 1);
  }
  service->stop();
}

TEST_F(ServiceTest, AStoppedServiceResumesItsRunOnTheNextStart) {
  fake.set_step_delay(std::chrono::milliseconds(40));
  start_service();
  std::string id = submit({{"workflow", testing::workflow("txt2img_api.json")}});
  std::string last_id;
  {
    SseReader sse(port(), "/v1/tasks/" + id + "/events", token);
    while (auto e = sse.next())
      if (!e->event.empty()) {
        last_id = e->id;
        if (json::parse(e->data)["progress"]["currentValue"] == 3) break;
      }
  }
  service->stop();
  start_service();
  auto rest = follow(id, last_id);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.front().id, std::to_string(std::stoi(last_id) + 1));
  EXPECT_EQ(rest.back().event, "completed");
  EXPECT_EQ(fake.submitted().size(), 1u);  // followed again, not submitted again
  json t = task(id);
  ASSERT_EQ(t["result"]["images"].size(), 1u);
  EXPECT_EQ(call("GET", t["result"]["images"][0]["url"].get<std::string>()).status, 200);
}

TEST_F(ServiceTest, MaxRunningHoldsFurtherGenerationsUntilASlotFrees) {
  options.max_running_per_pod = 1;
  start_service();
  fake.hold_queue(true);
  std::string a = submit({{"workflow", testing::workflow("empty_image_api.json")}});
  std::string b = submit({{"workflow", testing::workflow("empty_image_api.json")}});
  auto prompts_of = [&](const std::string& id) {
    return json::parse(*core::read_file(options.home.tasks() / (id + ".json")))["promptIds"].size();
  };
  // Whichever took the slot waits in ComfyUI's held queue; the other waits for the slot.
  ASSERT_TRUE(testing::wait_for_change(options.home.tasks(), [&] { return prompts_of(a) + prompts_of(b) == 1; },
                                       std::chrono::seconds(20)));
  EXPECT_EQ(fake.submitted().size(), 1u);
  std::string waiting = prompts_of(a) ? b : a;
  EXPECT_EQ(prompts_of(waiting), 0u);
  EXPECT_EQ(task(waiting)["status"], "queued");
  fake.hold_queue(false);
  EXPECT_EQ(follow(a).back().event, "completed");
  EXPECT_EQ(follow(b).back().event, "completed");
  EXPECT_EQ(fake.submitted().size(), 2u);
}

TEST_F(ServiceTest, FinishedTasksArePrunedWithTheirOutputs) {
  options.prune_after = std::chrono::milliseconds(0);
  options.prune_interval = std::chrono::milliseconds(50);
  start_service();
  fake.hold_queue(true);  // a finished task may go at once: be subscribed before it finishes
  std::string id = submit({{"workflow", testing::workflow("empty_image_api.json")}});
  SseReader sse(port(), "/v1/tasks/" + id + "/events", token);
  ASSERT_EQ(sse.status(), 200);
  fake.hold_queue(false);
  std::string last;
  while (auto e = sse.next()) last = e->event.empty() ? last : e->event;
  EXPECT_EQ(last, "completed");
  sse.close();
  ASSERT_TRUE(testing::wait_for_change(options.home.tasks(), [&] {
    return !std::filesystem::exists(options.home.tasks() / (id + ".json"));
  }, std::chrono::seconds(20)));
  EXPECT_FALSE(std::filesystem::exists(options.home.outputs() / id));
  EXPECT_EQ(call("GET", "/v1/tasks/" + id).status, 404);
}

}  // namespace
}  // namespace autopod
