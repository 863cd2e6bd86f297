#pragma once
// A real OpenSSH sshd on 127.0.0.1, a TCP target behind it and a TunnelManager with its own
// AUTOPOD_HOME: the setup of the tunnel tests.

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/ssh_key.hpp"
#include "core/state_file.hpp"
#include "sandbox/sshd_harness.hpp"
#include "sandbox/tcp_target.hpp"
#include "tests/harness/harness.hpp"
#include "tunnel/tunnel.hpp"

namespace autopod {

using nlohmann::json;
using tunnel::TunnelManager;

struct TunnelFixture : ::testing::Test {
  testing::TempDir dir;
  std::filesystem::path home;
  std::unique_ptr<sandbox::SshdHarness> sshd;
  sandbox::TcpTarget target;
  std::unique_ptr<TunnelManager> manager;

  void SetUp() override {
    home = dir / "home";
    auto started = sandbox::SshdHarness::start(dir / "sshd");
    ASSERT_TRUE(started) << started.error().describe();
    sshd = std::move(started).value();
    auto key = core::ensure_ssh_key(home / "id_ed25519", true);
    ASSERT_TRUE(key) << key.error().message;
    ASSERT_TRUE(sshd->authorize(key->public_key));
    ASSERT_TRUE(target.start());
    manager = std::make_unique<TunnelManager>(
        core::Home(home), std::vector<std::string>{testing::tunneld_binary()});
  }
  void TearDown() override {
    if (manager) (void)manager->stop_all();
  }

  tunnel::TunnelSpec spec(int local_port = 0) {
    tunnel::TunnelSpec s;
    s.pod_id = "pod1";
    s.pod_name = "comfy";
    s.ssh = {"127.0.0.1", sshd->port(), sshd->user(), home / "id_ed25519"};
    s.forwards = {{"127.0.0.1", local_port ? local_port : testing::free_port(), "127.0.0.1",
                   target.port()}};
    return s;
  }

  std::size_t entries() {
    auto doc = core::StateFile(home / "tunnels.json").read();
    return doc ? doc->value("tunnels", json::object()).size() : 999;
  }

  std::string status_of(const std::string& id) {
    auto list = manager->list();
    if (!list) return "error";
    for (const auto& t : *list)
      if (t.id == id) return t.status;
    return "absent";
  }

  // What the tunnel's daemon says about itself; nullopt when it does not answer.
  std::optional<tunnel::TunnelStats> stats_of(const std::string& id) {
    auto list = manager->list();
    if (!list) return std::nullopt;
    for (const auto& t : *list)
      if (t.id == id) return t.stats;
    return std::nullopt;
  }
};

}  // namespace autopod
