// autopod tunnel start|list|stop end to end: real tunnels over the sandbox pod's sshd
// (agent/cli/tunnel_cmd.cpp).

#include <gtest/gtest.h>

#include "sandbox/tcp_target.hpp"

#include "tests/agent/cli_fixture.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::Cli;
using testing::k_key;

TEST_F(Cli, TunnelCommandsEndToEnd) {
  sandbox::TcpTarget target;
  ASSERT_TRUE(target.start());
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  int local = testing::free_port();
  std::string forward = std::to_string(local) + ":" + std::to_string(target.port());
  auto start = autopod({"tunnel", "start", "comfy", "-L", forward});
  EXPECT_RUN(start, 0);
  EXPECT_NE(start.out.find("http://127.0.0.1:" + std::to_string(local)), std::string::npos);
  auto again = autopod({"tunnel", "start", "comfy", "-L", forward});
  EXPECT_RUN(again, 0);
  EXPECT_NE(again.err.find("already running"), std::string::npos);
  ASSERT_TRUE(sandbox::pull_pattern(local, 1 << 20, 5));

  auto list = autopod({"tunnel", "list", "--json"});
  EXPECT_RUN(list, 0);
  auto doc = json::parse(list.out);
  ASSERT_EQ(doc["tunnels"].size(), 1u);
  auto t = doc["tunnels"][0];
  for (const char* key : {"id", "spec", "pid", "start_time", "started_at", "status", "last_error",
                          "log_file", "stats"})
    EXPECT_TRUE(t.contains(key)) << key;
  EXPECT_EQ(t["status"], "active");
  EXPECT_GE(t["stats"]["bytes_from_pod"].get<std::uint64_t>(), 1u << 20);
  EXPECT_EQ(t["spec"]["pod_name"], "comfy");
  auto table = autopod({"tunnel", "list"});
  EXPECT_NE(table.out.find("active"), std::string::npos);
  EXPECT_NE(table.out.find("1.0 MiB"), std::string::npos) << table.out;

  EXPECT_RUN(autopod({"tunnel", "stop", "comfy"}), 0);
  EXPECT_EQ(json::parse(autopod({"tunnel", "list", "--json"}).out)["tunnels"].size(), 0u);
  EXPECT_RUN(autopod({"tunnel", "stop", "comfy"}), 3);
}

TEST_F(Cli, TunnelToAStoppedPodSaysToStartIt) {
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  EXPECT_RUN(autopod({"stop", "comfy"}), 0);
  auto r = autopod({"tunnel", "start", "comfy"});
  EXPECT_RUN(r, 1);
  EXPECT_NE(r.err.find("pod comfy is exited, not running"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("autopod connect --name comfy"), std::string::npos);
}

TEST_F(Cli, KillingAPodStopsItsTunnels) {
  sandbox::TcpTarget target;
  ASSERT_TRUE(target.start());
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  EXPECT_RUN(autopod({"tunnel", "start", "-L",
                      std::to_string(testing::free_port()) + ":" + std::to_string(target.port())}), 0);
  auto kill = autopod({"kill", "comfy", "--yes"});
  EXPECT_RUN(kill, 0);
  EXPECT_NE(kill.err.find("stopped tunnel"), std::string::npos);
  EXPECT_EQ(json::parse(autopod({"tunnel", "list", "--json"}).out)["tunnels"].size(), 0u);
}

TEST_F(Cli, TunnelBindingBeyondLoopbackWarns) {
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  auto r = autopod({"tunnel", "start", "--bind", "0.0.0.0", "-L",
                    std::to_string(testing::free_port()) + ":1"});
  EXPECT_RUN(r, 0);
  EXPECT_NE(r.err.find("warning: listening on 0.0.0.0"), std::string::npos) << r.err;
  EXPECT_RUN(autopod({"tunnel", "stop-all"}), 0);
}

}  // namespace
}  // namespace autopod
