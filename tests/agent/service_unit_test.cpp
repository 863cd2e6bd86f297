// The service's small parts: signatures, token comparison, the task's JSON shape, step names.

#include <gtest/gtest.h>

#include "agent/service/progress.hpp"
#include "agent/service/secrets.hpp"
#include "agent/service/task.hpp"
#include "tests/agent/service_testing.hpp"

namespace autopod {
namespace {

using namespace agent::service;
using nlohmann::json;

TEST(AgentSecrets, SignatureIsHmacSha256OfTimestampDotBody) {
  // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  std::string body = R"({"taskId":"t"})";
  EXPECT_EQ(webhook_signature("s3cret", 1700000000, body),
            "t=1700000000,v1=" + testing::hmac_hex("s3cret", "1700000000." + body));
}

TEST(AgentSecrets, TokenComparisonNeedsTheWholeToken) {
  EXPECT_TRUE(constant_time_equal("abcdef", "abcdef"));
  EXPECT_FALSE(constant_time_equal("abcdef", "abcdeg"));
  EXPECT_FALSE(constant_time_equal("abcdef", "abcde"));
  EXPECT_FALSE(constant_time_equal("", ""));
}

TEST(AgentTask, ApiViewHasExactlyTheDocumentedShape) {
  Task t;
  t.id = "abc";
  t.status = TaskStatus::in_progress;
  t.progress = {45, "Sampling image...", 9, 20, 12.4};
  t.metadata = {{"k", 1}};
  t.created_at = TimePoint(std::chrono::milliseconds(1795610096789));
  t.updated_at = t.created_at + std::chrono::milliseconds(33334);
  json v = api_view(t);
  EXPECT_EQ(v["createdAt"], "2026-11-25T12:34:56.789Z");
  EXPECT_EQ(v["timestamp"], "2026-11-25T12:35:30.123Z");
  EXPECT_EQ(v["status"], "in-progress");
  EXPECT_EQ(v["progress"], json::parse(R"({"percentage":45,"currentStep":"Sampling image...","currentValue":9,
                                           "maxValue":20,"etaSeconds":12})"));
  EXPECT_EQ(v.size(), 9u);
  testing::OpenApi api;
  EXPECT_EQ(api.check_schema(v, "Task"), "");
  auto back = from_record(to_record(t));
  ASSERT_TRUE(back);
  EXPECT_EQ(api_view(*back), v);
}

TEST(AgentSteps, NodeTypesNameTheStepAndTheTableIsConfigurable) {
  comfy::RunState run;
  run.nodes = {{"3", {"KSampler", "KSampler"}}, {"8", {"VAEDecode", "VAEDecode"}}, {"9", {"MyNode", "Fancy title"}}};
  StepNames steps;
  EXPECT_EQ(steps.name(run, "3"), "Sampling image...");
  EXPECT_EQ(steps.name(run, "8"), "Decoding image...");
  EXPECT_EQ(steps.name(run, "9"), "Fancy title");
  StepNames custom({{"MyNode", "Doing magic..."}, {"KSampler", "Dreaming..."}});
  EXPECT_EQ(custom.name(run, "9"), "Doing magic...");
  EXPECT_EQ(custom.name(run, "3"), "Dreaming...");
}

TEST(AgentOutputs, UrlSegmentsRoundTrip) {
  std::string out;
  EXPECT_EQ(encode_segment("autopod/a b.png"), "autopod%2Fa%20b.png");
  ASSERT_TRUE(decode_segment("autopod%2Fa%20b.png", out));
  EXPECT_EQ(out, "autopod/a b.png");
  EXPECT_FALSE(decode_segment("bad%2", out));
}

}  // namespace
}  // namespace autopod
