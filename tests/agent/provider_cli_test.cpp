// Providers other than RunPod through the binary: the ssh provider's hosts and plugins.

#include <gtest/gtest.h>

#include "core/ssh_key.hpp"

#include "tests/agent/cli_fixture.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::Cli;
using testing::k_key;

TEST_F(Cli, SshProviderUsesConfiguredHosts) {
  ASSERT_TRUE(core::ensure_dir(dir / "home"));
  auto key = core::ensure_ssh_key(dir / "home" / "box_key", true);
  ASSERT_TRUE(key);
  ASSERT_TRUE(sshd->authorize(key->public_key));
  ASSERT_TRUE(core::write_file_atomic(
      dir / "home" / "config.yaml",
      "provider: ssh\nhosts:\n  box:\n    host: 127.0.0.1\n    port: " +
          std::to_string(sshd->port()) + "\n    user: " + sshd->user() + "\n    key: " +
          (dir / "home" / "box_key").string() + "\n",
      0600));
  auto ls = autopod({"ls"});
  EXPECT_RUN(ls, 0);
  EXPECT_NE(ls.out.find("box"), std::string::npos);
  auto connect = autopod({"connect", "--name", "box", "--timeout", "10"});
  EXPECT_RUN(connect, 0);
  EXPECT_NE(connect.err.find("ready"), std::string::npos);
  auto ssh = autopod({"ssh", "box", "--", "echo", "on-my-box"});
  EXPECT_RUN(ssh, 0);
  EXPECT_EQ(ssh.out, "on-my-box\n");
  auto kill = autopod({"kill", "box", "--yes"});
  EXPECT_RUN(kill, 1);
  EXPECT_NE(kill.err.find("ssh provider cannot terminate"), std::string::npos);
  EXPECT_EQ(requests(), 0u);  // nothing went to runpod
}

TEST_F(Cli, PluginProviderFromPluginDir) {
  auto r = autopod({"--plugin-dir", testing::plugin_dir(), "--provider", "static", "connect",
                    "--name", "x", "--no-wait", "--json"});
  EXPECT_RUN(r, 0);
  EXPECT_EQ(json::parse(r.out)["provider"], "static");
  auto providers = autopod({"--plugin-dir", testing::plugin_dir(), "providers", "--json"});
  EXPECT_RUN(providers, 0);
  auto doc = json::parse(providers.out);
  EXPECT_FALSE(doc["plugin_errors"].empty());  // the deliberately bad test plugins
  auto names = doc["providers"].get<std::vector<std::string>>();
  EXPECT_NE(std::find(names.begin(), names.end(), "static"), names.end());
}

// plugin_abi.h promises each plugin its own config.yaml section: plugins: {NAME: {...}}.
TEST_F(Cli, PluginGetsItsOwnConfigSection) {
  ASSERT_TRUE(core::ensure_dir(dir / "home"));
  ASSERT_TRUE(core::write_file_atomic(dir / "home" / "config.yaml",
                                      "plugins:\n  static:\n    image: from-plugin-config\n", 0600));
  auto r = autopod({"--plugin-dir", testing::plugin_dir(), "--provider", "static", "connect",
                    "--name", "x", "--no-wait", "--json"});
  EXPECT_RUN(r, 0);
  EXPECT_EQ(json::parse(r.out)["image"], "from-plugin-config");
}

}  // namespace
}  // namespace autopod
