// The ComfyUI client against the ComfyUI fake over loopback.

#include <gtest/gtest.h>

#include "comfy/client.hpp"
#include "tests/comfy/comfy_testing.hpp"
#include "sandbox/comfy_fake.hpp"
#include "tests/fakes/fake_clock.hpp"

namespace autopod {
namespace {

using core::ErrorCode;
using nlohmann::json;

struct ComfyFixture : ::testing::Test {
  sandbox::ComfyFake fake;
  testing::FakeClock clock;
  std::unique_ptr<comfy::ComfyClient> client;
  void SetUp() override {
    ASSERT_TRUE(fake.start());
    client = std::make_unique<comfy::ComfyClient>(testing::comfy_client(fake.url() + "/"));
  }
};

using ComfyClient = ComfyFixture;

TEST_F(ComfyClient, SystemStatsOfARealServerParse) {
  auto s = client->system_stats();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->comfyui_version, "0.3.64");
  EXPECT_EQ(s->ram_total, 25276510208u);
  ASSERT_EQ(s->devices.size(), 1u);
  EXPECT_EQ(s->devices[0].type, "cpu");
  EXPECT_FALSE(fake.saw_origin_header());  // ComfyUI's origin check must never see one from us
}

TEST(ComfyParse, OlderServersWithoutVersionFieldsParse) {
  auto s = comfy::parse_system_stats(json::parse(
      R"({"system": {"os": "posix", "python_version": "3.10.6"}, "devices": []})"));
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->comfyui_version.empty());
}

TEST(ComfyParse, SomethingElseIsAProtocolError) {
  auto s = comfy::parse_system_stats(json::parse(R"({"status": "ok"})"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::protocol);
}

TEST(ComfyParse, PendingQueueIsSortedAndLongerItemsAreAccepted) {
  auto q = comfy::parse_queue(json::parse(R"({"queue_running": [],
    "queue_pending": [[9, "b", {}, {}, []], [2, "a", {"1": {}}, {"client_id": "c"}, [], "extra"]]})"));
  ASSERT_TRUE(q) << q.error().message;
  ASSERT_EQ(q->pending.size(), 2u);
  EXPECT_EQ(q->pending[0].prompt_id, "a");
  EXPECT_EQ(q->pending[0].client_id, "c");
  EXPECT_EQ(q->pending[0].node_count, 1);
}

TEST_F(ComfyClient, WaitReadyRetriesWhileTheServerStarts) {
  fake.refuse_first(3);
  auto s = client->wait_ready(std::chrono::seconds(20));
  ASSERT_TRUE(s) << s.error().message;
}

TEST_F(ComfyClient, WaitReadyGivesUpWithTheReason) {
  auto nowhere = testing::comfy_client("http://127.0.0.1:1", clock);
  auto s = nowhere.wait_ready(std::chrono::seconds(5));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::timeout);
  EXPECT_NE(s.error().message.find("not reachable"), std::string::npos);
  ASSERT_GE(clock.sleeps().size(), 3u);  // backoff: 250, 500, 1000, ...
  EXPECT_EQ(clock.sleeps()[0], std::chrono::milliseconds(250));
  EXPECT_EQ(clock.sleeps()[1], std::chrono::milliseconds(500));
}

TEST_F(ComfyClient, WaitReadyStaysWithinItsTimeoutWhenTheServerNeverAnswers) {
  // Given a listener whose accept queue takes the connection but that never answers (a hung
  // ComfyUI, or a tunnel whose far end is gone): one request alone has a 30 s limit.
  testing::SilentListener silent;
  auto hung = testing::comfy_client(silent.url());
  auto started = std::chrono::steady_clock::now();
  auto s = hung.wait_ready(std::chrono::seconds(2));
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::timeout);
  EXPECT_LT(took, std::chrono::milliseconds(3000));
  EXPECT_GE(took, std::chrono::milliseconds(1900));
  EXPECT_NE(s.error().message.find("not ready after 2."), std::string::npos) << s.error().message;
}

TEST(ComfyUrl, Ipv6LiteralsAndProxyPrefixesParseAndOtherSchemesAreRefused) {
  auto v6 = testing::comfy_client("http://[::1]:8188/");
  EXPECT_EQ(v6.base_url(), "http://[::1]:8188");
  EXPECT_EQ(v6.url().host, "::1");
  EXPECT_EQ(v6.url().authority(), "[::1]:8188");
  auto prefixed = testing::comfy_client("http://proxy.example/comfy/");
  EXPECT_EQ(prefixed.base_url(), "http://proxy.example:80/comfy");
  EXPECT_EQ(prefixed.url().path, "/comfy");
  auto https = comfy::ComfyClient::connect("https://x.proxy.runpod.net", core::make_curl_transport,
                                           core::system_clock());
  ASSERT_FALSE(https);
  EXPECT_EQ(https.error().code, ErrorCode::invalid_argument);
  EXPECT_FALSE(comfy::ComfyClient::connect("http://[::1", core::make_curl_transport, core::system_clock()));
}

TEST_F(ComfyClient, QueueInterruptAndCancel) {
  fake.set_running("run-1", {{"1", {{"class_type", "EmptyImage"}}}});
  fake.add_pending("p-10", 10, json::object());
  fake.add_pending("p-7", 7, json::object());
  auto q = client->queue();
  ASSERT_TRUE(q);
  ASSERT_EQ(q->running.size(), 1u);
  EXPECT_EQ(q->running[0].prompt_id, "run-1");
  ASSERT_EQ(q->pending.size(), 2u);
  EXPECT_EQ(q->pending[0].prompt_id, "p-7");  // sorted, though the server sent them unsorted

  ASSERT_TRUE(client->interrupt("not-running"));
  EXPECT_EQ(fake.interrupts(), 0);  // a targeted interrupt of another prompt is a no-op
  ASSERT_TRUE(client->cancel({"p-10"}));
  ASSERT_TRUE(client->interrupt());
  EXPECT_EQ(fake.interrupts(), 1);
  q = client->queue();
  EXPECT_TRUE(q->running.empty());
  ASSERT_EQ(q->pending.size(), 1u);
  EXPECT_EQ(q->pending[0].prompt_id, "p-7");
  auto entry = client->history("run-1");
  ASSERT_TRUE(entry);
  EXPECT_EQ((*entry)["run-1"]["status"]["status_str"], "error");
}

TEST_F(ComfyClient, UnknownHistoryIsAnEmptyObject) {
  auto h = client->history("nope");
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->empty());
}

TEST_F(ComfyClient, HistoryAsksForTheNewestEntriesOnly) {
  for (int i = 0; i < 5; ++i) fake.add_history("id" + std::to_string(i), {{"outputs", json::object()}});
  auto h = client->history("", 2);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->size(), 2u);
}

TEST_F(ComfyClient, FreeSendsBothFlags) {
  ASSERT_TRUE(client->free(true, false));
  EXPECT_EQ(fake.last_free(), json({{"unload_models", true}, {"free_memory", false}}));
}

TEST_F(ComfyClient, NodeCountComesFromObjectInfo) {
  auto n = client->node_count();
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 13);
}

TEST_F(ComfyClient, NotComfyUiIsAClearErrorNotARetryLoop) {
  auto wrong = testing::comfy_client(fake.url() + "/nothing-here", clock);
  auto s = wrong.wait_ready(std::chrono::seconds(30));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().http_status, 404);
  EXPECT_TRUE(clock.sleeps().empty());
}

}  // namespace
}  // namespace autopod
