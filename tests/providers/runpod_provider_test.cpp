// The RunPod client against a fake transport: request shapes, error mapping, retries, lifecycle
// actions. Creating pods and volumes: runpod_create_test.cpp.

#include <gtest/gtest.h>

#include "tests/providers/runpod_fixture.hpp"

namespace autopod {
namespace {

using core::ErrorCode;
using nlohmann::json;
using testing::k_catalog;
using testing::pod_body;
using testing::problem;
using RunpodProvider = testing::RunpodFixture;

TEST_F(RunpodProvider, ListSendsBearerKeyAndParsesPods) {
  transport->reply("GET /v2/pods", 200, "{\"pods\":[" + pod_body("p1", "a", "RUNNING") + "]}");
  auto pods = provider->list_pods();
  ASSERT_TRUE(pods) << pods.error().message;
  ASSERT_EQ(pods->size(), 1u);
  EXPECT_EQ((*pods)[0].status, providers::PodStatus::running);
  ASSERT_TRUE((*pods)[0].ssh);
  EXPECT_EQ((*pods)[0].ssh->port, 10341);
  const auto& req = transport->requests().at(0);
  EXPECT_EQ(req.url, "http://runpod.test/v2/pods");
  EXPECT_NE(std::find(req.headers.begin(), req.headers.end(),
                      core::Headers::value_type{"Authorization", "Bearer rpa_testkey"}),
            req.headers.end());
}

TEST_F(RunpodProvider, MissingKeySaysHowToSetIt) {
  make("");
  auto r = provider->list_pods();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::auth);
  EXPECT_NE(r.error().hint.find("RUNPOD_API_KEY"), std::string::npos);
  EXPECT_TRUE(transport->requests().empty());
}

TEST_F(RunpodProvider, RefusedKeyIsAnAuthErrorWithHint) {
  transport->reply("GET /v2/pods", 401, problem(401, "invalid bearer token"));
  auto r = provider->list_pods();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::auth);
  EXPECT_NE(r.error().message.find("refused the api key (http 401)"), std::string::npos);
  EXPECT_NE(r.error().hint.find("RUNPOD_API_KEY"), std::string::npos);
  EXPECT_EQ(transport->requests().size(), 1u);  // never retried
}

TEST_F(RunpodProvider, RateLimitWaitsForRetryAfterThenSucceeds) {
  transport->reply("GET /v2/pods", 429, problem(429, "rate limit"), {{"retry-after", "7"}});
  transport->reply("GET /v2/pods", 200, "{\"pods\":[]}");
  ASSERT_TRUE(provider->list_pods());
  ASSERT_EQ(clock.sleeps().size(), 1u);
  EXPECT_EQ(clock.sleeps()[0], std::chrono::seconds(7));
}

TEST_F(RunpodProvider, RetriesAreBounded) {
  for (int i = 0; i < 10; ++i) transport->reply("GET /v2/pods", 500, problem(500, "boom"));
  auto r = provider->list_pods();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status, 500);
  EXPECT_EQ(transport->requests().size(), 5u);
}

TEST_F(RunpodProvider, MalformedAnswerIsAProtocolErrorNotACrash) {
  transport->reply("GET /v2/pods", 200, "{\"pods\": [{\"id\": \"trunc");
  auto r = provider->list_pods();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::protocol);
  EXPECT_NE(r.error().message.find("GET /v2/pods"), std::string::npos);
}

TEST_F(RunpodProvider, StopUsesTheActionEndpoint) {
  transport->reply("POST /v2/pods/p1/action", 200, pod_body("p1", "a", "EXITED"));
  auto pod = provider->stop_pod("p1");
  ASSERT_TRUE(pod);
  EXPECT_EQ(pod->status, providers::PodStatus::exited);
  EXPECT_EQ(json::parse(transport->requests().at(0).body), json({{"action", "stop"}}));
}

TEST_F(RunpodProvider, StartWithoutAFreeGpuPointsToDownAndConnect) {
  transport->reply("POST /v2/pods/p1/action", 400,
                   problem(400, "There are not enough free GPUs on the host machine"));
  auto pod = provider->start_pod("p1");
  ASSERT_FALSE(pod);
  EXPECT_EQ(pod.error().code, ErrorCode::no_capacity);
  EXPECT_NE(pod.error().hint.find("autopod down p1"), std::string::npos);
}

TEST_F(RunpodProvider, StopOfAStoppedPodIsNotAnError) {
  transport->reply("POST /v2/pods/p1/action", 409, problem(409, "not allowed"));
  transport->reply("GET /v2/pods/p1", 200, pod_body("p1", "a", "EXITED"));
  EXPECT_TRUE(provider->stop_pod("p1"));
}

TEST_F(RunpodProvider, TerminateOfAnUnknownPodIsNotFound) {
  transport->reply("DELETE /v2/pods/p1", 404, problem(404, "pod not found"));
  auto r = provider->terminate_pod("p1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
}

TEST_F(RunpodProvider, RejectsIdsThatWouldChangeThePath) {
  auto r = provider->get_pod("../account");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_TRUE(transport->requests().empty());
}

TEST_F(RunpodProvider, VolumeSizeIsCheckedBeforeAnyRequest) {
  auto r = provider->create_volume({"v", 5, "EU-RO-1", ""});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_TRUE(transport->requests().empty());
}

TEST_F(RunpodProvider, StartRefusedForBalanceSaysThePodExistsStopped) {
  transport->reply("POST /v2/pods/p1/action", 402, problem(402, "insufficient balance"));
  auto pod = provider->start_pod("p1");
  ASSERT_FALSE(pod);
  EXPECT_EQ(pod.error().code, ErrorCode::payment);
  EXPECT_EQ(pod.error().hint.find("nothing was created"), std::string::npos) << pod.error().hint;
  EXPECT_NE(pod.error().message.find("p1"), std::string::npos) << pod.error().message;
  EXPECT_NE(pod.error().message.find("stopped"), std::string::npos) << pod.error().message;
  EXPECT_NE(pod.error().hint.find("add funds"), std::string::npos);
}

TEST_F(RunpodProvider, PodsCarryAutopodsKeyComfyPortAndModelsRoot) {
  transport->reply("GET /v2/pods", 200, "{\"pods\":[" + pod_body("p1", "a", "RUNNING") + "]}");
  auto pods = provider->list_pods();
  ASSERT_TRUE(pods) << pods.error().message;
  const auto& pod = pods->at(0);
  ASSERT_TRUE(pod.ssh);
  EXPECT_EQ(pod.ssh->key, "/home/me/.autopod/id_ed25519");
  EXPECT_EQ(pod.comfy_port, 8188);
  EXPECT_EQ(pod.models_root, "/workspace/ComfyUI/models");  // no volume: pod.mount_path's
  EXPECT_TRUE(provider->capabilities().records);
}

}  // namespace
}  // namespace autopod
