// Creating on RunPod against a fake transport: gpu and data center candidates, capacity, lost
// answers and retries (each create happens once), and what the errors tell the user.

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

// Field report 4: every other request (1st, 3rd, ...) fails and does nothing; the rest work.
void every_other_request_fails(testing::FakeTransport& transport, int status, std::string body) {
  transport.intercept([=](std::size_t index, const core::HttpRequest&)
                          -> std::optional<core::Result<core::HttpResponse>> {
    if (index % 2 == 1) return std::nullopt;
    return testing::FakeTransport::response(status, body);
  });
  transport.always("GET /v2/catalog/gpus", [](const core::HttpRequest&) {
    return core::Result<core::HttpResponse>(testing::FakeTransport::response(200, k_catalog));
  });
  transport.always("GET /v2/pods", [](const core::HttpRequest&) {
    return core::Result<core::HttpResponse>(testing::FakeTransport::response(200, "{\"pods\":[]}"));
  });
  transport.always("POST /v2/pods", [](const core::HttpRequest&) {
    return core::Result<core::HttpResponse>(
        testing::FakeTransport::response(201, pod_body("made", "comfy")));
  });
}

void expect_backoff_after_every_failure(const testing::FakeTransport& transport) {
  // Failures are the even indexes; the request after each must come after a wait.
  const auto& times = transport.times();
  for (std::size_t i = 0; i + 1 < times.size(); i += 2)
    EXPECT_GT(times[i + 1], times[i]) << "request " << i + 1 << " ("
                                      << testing::FakeTransport::key_of(transport.requests()[i + 1])
                                      << ") went out right after a failure";
}

TEST_F(RunpodProvider, ServerErrorsAndLostConnectionsAreRetriedWithBackoff) {
  transport->reply("GET /v2/pods", 503, problem(503, "upstream"));
  transport->fail_with("GET /v2/pods", ErrorCode::network);
  transport->reply("GET /v2/pods", 200, "{\"pods\":[]}");
  ASSERT_TRUE(provider->list_pods());
  EXPECT_EQ(clock.sleeps().size(), 2u);
  EXPECT_EQ(transport->requests().size(), 3u);
}

TEST_F(RunpodProvider, CreateSendsTheV2BodyOnAFreshConnection) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  transport->reply("POST /v2/pods", 201, pod_body("new1", "comfy"));
  auto s = spec();
  s.volume_id = "vol1";
  s.data_centers = {"EU-RO-1"};
  s.env = {{"HF_HOME", "/workspace/hf"}};
  s.public_key = "ssh-ed25519 AAAA test";
  auto pod = provider->create_pod(s);
  ASSERT_TRUE(pod) << pod.error().message;
  EXPECT_EQ(pod->id, "new1");
  const auto& req = transport->requests().at(1);
  EXPECT_TRUE(req.fresh_connection);
  auto body = json::parse(req.body);
  EXPECT_EQ(body["gpu"]["id"], "NVIDIA A40");  // "A40" resolved through the catalog
  EXPECT_EQ(body["cloud"], "SECURE");
  EXPECT_EQ(body["dataCenterIds"], json({"EU-RO-1"}));
  EXPECT_EQ(body["mounts"]["network"][0]["volumeId"], "vol1");
  EXPECT_EQ(body["mounts"]["network"][0]["path"], "/workspace");
  EXPECT_EQ(body["env"]["PUBLIC_KEY"], "ssh-ed25519 AAAA test");
  EXPECT_EQ(body["env"]["HF_HOME"], "/workspace/hf");
  EXPECT_FALSE(body.contains("networkVolumeId"));  // v1 names are rejected by v2
}

TEST_F(RunpodProvider, NoCapacityTriesTheNextGpuType) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  transport->reply("POST /v2/pods", 400,
                   problem(400, "There are no longer any instances available with the "
                                "requested specifications."));
  transport->reply("POST /v2/pods", 201, pod_body("p2", "comfy"));
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().message;
  EXPECT_EQ(json::parse(transport->requests().at(2).body)["gpu"]["id"], "NVIDIA L40S");
  ASSERT_FALSE(progress.empty());
  EXPECT_NE(progress[0].find("no capacity for NVIDIA A40"), std::string::npos);
}

TEST_F(RunpodProvider, NoCapacityAnywhereSaysWhatWasTried) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  auto s = spec();
  s.data_centers = {"EU-RO-1", "US-KS-2"};
  for (int i = 0; i < 4; ++i)
    transport->reply("POST /v2/pods", 400, problem(400, "There are no longer any instances"));
  auto pod = provider->create_pod(s);
  ASSERT_FALSE(pod);
  EXPECT_EQ(pod.error().code, ErrorCode::no_capacity);
  EXPECT_NE(pod.error().message.find("NVIDIA L40S in US-KS-2"), std::string::npos);
  EXPECT_EQ(transport->count("POST /v2/pods"), 4u);
}

TEST_F(RunpodProvider, EmptyBalanceStopsAtOnce) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  transport->reply("POST /v2/pods", 402, problem(402, "insufficient balance"));
  auto pod = provider->create_pod(spec());
  ASSERT_FALSE(pod);
  EXPECT_EQ(pod.error().code, ErrorCode::payment);
  EXPECT_EQ(transport->count("POST /v2/pods"), 1u);
}

TEST_F(RunpodProvider, SchemaViolationIsNeverRetried) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  transport->reply("POST /v2/pods", 422,
                   json{{"title", "Unprocessable Entity"}, {"status", 422},
                        {"detail", "Request validation failed."},
                        {"errors", {"foo: unknown property"}}}.dump());
  auto pod = provider->create_pod(spec());
  ASSERT_FALSE(pod);
  // Was invalid_argument (exit 2, "your input"); autopod built this request (field report 5b).
  EXPECT_EQ(pod.error().code, ErrorCode::remote);
  EXPECT_NE(pod.error().message.find("foo: unknown property"), std::string::npos);
  EXPECT_EQ(transport->count("POST /v2/pods"), 1u);
}

TEST_F(RunpodProvider, EveryCandidateRuleViolationIsReportedAsTheRequestProblem) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  transport->reply("POST /v2/pods", 400, problem(400, "disk too small for image"));
  transport->reply("POST /v2/pods", 400, problem(400, "disk too small for image"));
  auto pod = provider->create_pod(spec());
  ASSERT_FALSE(pod);
  EXPECT_EQ(pod.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(pod.error().message.find("disk too small"), std::string::npos);
}

TEST_F(RunpodProvider, LostCreateAnswerIsResolvedByNameWithoutASecondCreate) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  transport->fail_with("POST /v2/pods", ErrorCode::network);
  transport->reply("GET /v2/pods", 200, "{\"pods\":[" + pod_body("made1", "comfy") + "]}");
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().message;
  EXPECT_EQ(pod->id, "made1");
  EXPECT_EQ(transport->count("POST /v2/pods"), 1u);
}

TEST_F(RunpodProvider, LostCreateThatDidNotHappenIsRetried) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  transport->reply("POST /v2/pods", 502, problem(502, "bad gateway"));
  transport->reply("GET /v2/pods", 200, "{\"pods\":[]}");
  transport->reply("POST /v2/pods", 201, pod_body("made2", "comfy"));
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().message;
  EXPECT_EQ(pod->id, "made2");
  EXPECT_EQ(transport->count("POST /v2/pods"), 2u);
}

TEST_F(RunpodProvider, UnknownGpuTypeListsTheValidOnes) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  auto s = spec();
  s.gpu_types = {"RTX 9090"};
  auto pod = provider->create_pod(s);
  ASSERT_FALSE(pod);
  EXPECT_EQ(pod.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(pod.error().message.find("RTX 9090"), std::string::npos);
  EXPECT_NE(pod.error().hint.find("NVIDIA L40S"), std::string::npos);
  EXPECT_EQ(transport->count("POST /v2/pods"), 0u);
}

TEST_F(RunpodProvider, TerminateRetriedAfterALostAnswerAcceptsNotFound) {
  transport->fail_with("DELETE /v2/pods/p1", ErrorCode::network);
  transport->reply("DELETE /v2/pods/p1", 404, problem(404, "pod not found"));
  EXPECT_TRUE(provider->terminate_pod("p1"));
}

TEST_F(RunpodProvider, VolumeCreateGivesUpOnARetryAfterLongerThanTheBound) {
  transport->reply("POST /v2/network-volumes", 429, problem(429, "rate limit"),
                   {{"retry-after", "600"}});
  auto r = provider->create_volume({"models", 20, "EU-RO-1", ""});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::rate_limited);
  EXPECT_EQ(transport->count("POST /v2/network-volumes"), 1u);
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST_F(RunpodProvider, CreateSucceedsWhenEveryOtherRequestAnswers503) {
  every_other_request_fails(*transport, 503, problem(503, "upstream unavailable"));
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().describe();
  EXPECT_EQ(pod->id, "made");
  expect_backoff_after_every_failure(*transport);
}

TEST_F(RunpodProvider, CreateSucceedsWhenEveryOtherRequestIsA502GatewayPage) {
  every_other_request_fails(*transport, 502,
                            "<html><head><title>502 Bad Gateway</title></head></html>");
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().describe();
  expect_backoff_after_every_failure(*transport);
}

// A lost answer still means: look the pod up by name (after a backoff) before sending again.
TEST_F(RunpodProvider, LookupAfterALostCreateAnswerWaitsABackoff) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  transport->fail_with("POST /v2/pods", ErrorCode::network);
  transport->reply("GET /v2/pods", 200, "{\"pods\":[" + pod_body("made1", "comfy") + "]}");
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().message;
  ASSERT_EQ(transport->times().size(), 3u);
  EXPECT_GT(transport->times()[2], transport->times()[1]);
}

// The create's retries are bounded by time, not by a count a 50 % failure rate exhausts.
TEST_F(RunpodProvider, CreateKeepsRetryingServerErrorsUntilItsTimeIsUp) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  for (int i = 0; i < 8; ++i) transport->reply("POST /v2/pods", 503, problem(503, "busy"));
  transport->reply("POST /v2/pods", 201, pod_body("late", "comfy"));
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().describe();
  EXPECT_EQ(pod->id, "late");
}

TEST_F(RunpodProvider, NoCapacityAnywhereQuotesRunpodsOwnDetail) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  for (int i = 0; i < 2; ++i)
    transport->reply("POST /v2/pods", 400,
                     problem(400, "There are no longer any instances available with the "
                                  "requested specifications."));
  auto pod = provider->create_pod(spec());
  ASSERT_FALSE(pod);
  EXPECT_EQ(pod.error().code, ErrorCode::no_capacity);
  EXPECT_NE(pod.error().message.find("NVIDIA A40, NVIDIA L40S"), std::string::npos);
  EXPECT_NE(pod.error().message.find("There are no longer any instances available"),
            std::string::npos)
      << pod.error().message;
}

TEST_F(RunpodProvider, NoCapacityForAPodPinnedToItsVolumeSaysWhatCanHelp) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  for (int i = 0; i < 2; ++i)
    transport->reply("POST /v2/pods", 400, problem(400, "There are no longer any instances"));
  auto s = spec();
  s.volume_id = "vol1";
  s.data_centers = {"EU-RO-1"};
  auto pod = provider->create_pod(s);
  ASSERT_FALSE(pod);
  const auto& hint = pod.error().hint;
  EXPECT_EQ(hint.find("other data centers"), std::string::npos) << hint;
  EXPECT_EQ(hint.find("community"), std::string::npos) << hint;
  EXPECT_NE(hint.find("gpu types"), std::string::npos) << hint;
  EXPECT_NE(hint.find("volume"), std::string::npos) << hint;
  EXPECT_NE(hint.find("EU-RO-1"), std::string::npos) << hint;
}

TEST_F(RunpodProvider, SchemaViolationIsAutopodsProblemNotTheUsersInput) {
  transport->reply("GET /v2/catalog/gpus", 200, k_catalog);
  transport->reply("POST /v2/pods", 422,
                   json{{"title", "Unprocessable Entity"}, {"status", 422},
                        {"detail", "Request validation failed."},
                        {"errors", {"startSsh: unknown property"}}}.dump());
  auto pod = provider->create_pod(spec());
  ASSERT_FALSE(pod);
  EXPECT_NE(pod.error().code, ErrorCode::invalid_argument);  // not a usage error (exit 2)
  EXPECT_FALSE(pod.error().retryable());
  EXPECT_NE(pod.error().message.find("startSsh: unknown property"), std::string::npos);
}

}  // namespace
}  // namespace autopod
