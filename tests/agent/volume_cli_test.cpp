// autopod volume ls|create|rm end to end against the sandbox (agent/cli/volume_cmd.cpp).

#include <gtest/gtest.h>

#include "tests/agent/cli_fixture.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::Cli;
using testing::k_key;

TEST_F(Cli, VolumeCommands) {
  auto created = autopod({"volume", "create", "models", "--size", "100", "--dc", "EU-RO-1", "--json"});
  EXPECT_RUN(created, 0);
  auto vol = json::parse(created.out);
  auto again = autopod({"volume", "create", "models", "--size", "100", "--dc", "EU-RO-1"});
  EXPECT_RUN(again, 0);
  EXPECT_NE(again.err.find("already exists"), std::string::npos);
  auto ls = autopod({"volume", "ls", "--json"});
  EXPECT_EQ(json::parse(ls.out)["volumes"].size(), 1u);
  EXPECT_RUN(autopod({"volume", "create", "tiny", "--size", "5", "--dc", "EU-RO-1"}), 2);
  EXPECT_RUN(autopod({"volume", "rm", "models"}), 2);  // no terminal to ask, no --yes
  EXPECT_RUN(autopod({"volume", "rm", "models", "--yes"}), 0);
  EXPECT_TRUE(server->snapshot()["volumes"].empty());
}

}  // namespace
}  // namespace autopod
