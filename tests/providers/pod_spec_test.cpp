// What `connect` creates (flags > remembered record > config) and what pods.json keeps.

#include <gtest/gtest.h>

#include "providers/pod_spec.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

using core::ErrorCode;

providers::PodRecord down_record() {
  providers::PodRecord r;
  r.provider = "runpod";
  r.name = "comfy";
  r.status = "down";
  r.spec.name = "comfy";
  r.spec.image = "remembered:image";
  r.spec.gpu_types = {"NVIDIA A40"};
  r.spec.volume_id = "vol1";
  r.spec.data_centers = {"EU-RO-1"};
  return r;
}

TEST(ResolveSpec, ConfigDefaultsWithoutFlagsOrRecord) {
  core::PodDefaults d;
  d.env = {{"HF_HOME", "/workspace/hf"}};
  auto s = providers::resolve_spec(d, {}, std::nullopt);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "autopod");
  EXPECT_EQ(s->image, d.image);
  EXPECT_EQ(s->gpu_types, d.gpu_types);
  EXPECT_EQ(s->env.at("HF_HOME"), "/workspace/hf");
}

TEST(ResolveSpec, RecordOfAPodThatIsDownBeatsConfigAndFlagsBeatTheRecord) {
  core::PodDefaults d;
  d.env = {{"TOKEN", "from-config"}};
  auto s = providers::resolve_spec(d, {.name = "comfy"}, down_record());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->image, "remembered:image");
  EXPECT_EQ(s->volume_id, "vol1");
  EXPECT_EQ(s->data_centers, std::vector<std::string>{"EU-RO-1"});
  EXPECT_EQ(s->env.at("TOKEN"), "from-config");  // records hold no env
  auto flagged = providers::resolve_spec(
      d, {.name = "comfy", .image = "flag:image", .gpus = {"NVIDIA L40S"}, .env = {"A=1"}},
      down_record());
  ASSERT_TRUE(flagged);
  EXPECT_EQ(flagged->image, "flag:image");
  EXPECT_EQ(flagged->gpu_types, std::vector<std::string>{"NVIDIA L40S"});
  EXPECT_EQ(flagged->volume_id, "vol1");
  EXPECT_EQ(flagged->env.at("A"), "1");
}

TEST(ResolveSpec, RecordOfALivePodIsNotASpec) {
  auto r = down_record();
  r.status = "running";
  auto s = providers::resolve_spec({}, {.name = "comfy"}, r);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->image, core::PodDefaults{}.image);
}

TEST(ResolveSpec, BadInputIsAUsageError) {
  EXPECT_EQ(providers::resolve_spec({}, {.env = {"=x"}}, std::nullopt).error().code,
            ErrorCode::invalid_argument);
  EXPECT_EQ(providers::resolve_spec({}, {.cloud = "moon"}, std::nullopt).error().code,
            ErrorCode::invalid_argument);
  auto community = providers::resolve_spec({}, {.cloud = "community", .volume = "v"}, std::nullopt);
  ASSERT_FALSE(community);
  EXPECT_NE(community.error().hint.find("--cloud community"), std::string::npos);
}

TEST(Remember, OnlyAFreshCreateRecordsItsSpecAndSecretsStayOut) {
  testing::TempDir dir;
  providers::PodRecords records(dir / "pods.json");
  providers::Pod pod{.id = "p1", .name = "comfy", .provider = "runpod", .image = "from:pod",
                     .volume_id = "vol1"};
  providers::PodSpec created{.name = "comfy", .image = "as:created", .env = {{"T", "secret"}},
                             .public_key = "ssh-ed25519 AAAA"};
  ASSERT_TRUE(providers::remember(records, pod, created, "running"));
  auto r = records.find("runpod", "comfy");
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->spec.image, "as:created");
  EXPECT_TRUE((*r)->spec.env.empty());
  EXPECT_TRUE((*r)->spec.public_key.empty());
  // A reconnect (no fresh create) keeps what was recorded.
  ASSERT_TRUE(providers::remember(records, pod, std::nullopt, "down"));
  r = records.find("runpod", "comfy");
  EXPECT_EQ((*r)->spec.image, "as:created");
  EXPECT_EQ((*r)->status, "down");
  // Without a record, what the pod itself says.
  ASSERT_TRUE(providers::remember(records, {.id = "p2", .name = "other", .provider = "runpod",
                                            .image = "from:pod"}, std::nullopt, "running"));
  EXPECT_EQ((*records.find("runpod", "other"))->spec.image, "from:pod");
}

}  // namespace
}  // namespace autopod
