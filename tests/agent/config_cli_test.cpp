// autopod config show|init, and a malformed config.yaml (agent/cli/config_cmd.cpp).

#include <gtest/gtest.h>

#include "tests/agent/cli_fixture.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::Cli;
using testing::k_key;

TEST_F(Cli, MalformedConfigStopsEverythingAndSaysWhere) {
  ASSERT_TRUE(core::ensure_dir(dir / "home"));
  ASSERT_TRUE(core::write_file_atomic(dir / "home" / "config.yaml",
                                      "pod:\n  gpu_count: [1\n", 0600));
  auto r = autopod({"ls"});
  EXPECT_RUN(r, 2);
  EXPECT_NE(r.err.find("config.yaml:3:1"), std::string::npos) << r.err;
  EXPECT_EQ(requests(), 0u);
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

// Both views come from one table of keys: what the YAML view shows, the JSON view shows too.
TEST_F(Cli, ConfigShowJsonHasThePodEnvMaskedAsTheYamlViewDoes) {
  ASSERT_TRUE(core::ensure_dir(dir / "home"));
  ASSERT_TRUE(core::write_file_atomic(dir / "home" / "config.yaml",
                                      "pod:\n  env:\n    HF_TOKEN: hf_secretsecret1234\n", 0600));
  auto yaml = autopod({"config", "show"});
  EXPECT_RUN(yaml, 0);
  EXPECT_NE(yaml.out.find("HF_TOKEN"), std::string::npos) << yaml.out;
  EXPECT_NE(yaml.out.find("****1234"), std::string::npos) << yaml.out;
  auto shown = autopod({"config", "show", "--json"});
  EXPECT_RUN(shown, 0);
  EXPECT_EQ(shown.out.find("hf_secretsecret"), std::string::npos);
  auto doc = json::parse(shown.out);
  EXPECT_EQ(doc["pod"]["env"]["HF_TOKEN"], "****1234") << shown.out;
}

}  // namespace
}  // namespace autopod
