// The ssh provider and readiness checks against a real OpenSSH sshd on 127.0.0.1.

#include <gtest/gtest.h>

#include "providers/pod_ops.hpp"
#include "providers/ssh_host/ssh_host_provider.hpp"
#include "sandbox/http_server.hpp"
#include "sandbox/runpod_sandbox.hpp"
#include "sandbox/sshd_harness.hpp"
#include "providers/runpod/runpod_provider.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "core/fs.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

using core::ErrorCode;

struct SshdFixture : ::testing::Test {
  testing::TempDir dir;
  std::unique_ptr<sandbox::SshdHarness> sshd;
  void SetUp() override {
    auto started = sandbox::SshdHarness::start(dir / "sshd");
    ASSERT_TRUE(started) << started.error().describe();
    sshd = std::move(started).value();
  }
  std::map<std::string, core::HostConfig> hosts() {
    core::HostConfig h;
    h.name = "box";
    h.host = "127.0.0.1";
    h.port = sshd->port();
    h.user = sshd->user();
    return {{"box", h}};
  }
};

using SshHostProvider = SshdFixture;

TEST_F(SshHostProvider, HostsArePodsThatAreAlwaysRunning) {
  auto p = providers::ssh_host::make_ssh_host_provider(hosts());
  auto pods = p->list_pods();
  ASSERT_EQ(pods->size(), 1u);
  EXPECT_EQ((*pods)[0].status, providers::PodStatus::running);
  EXPECT_EQ((*pods)[0].ssh->port, sshd->port());
  EXPECT_EQ(p->get_pod("nope").error().code, ErrorCode::not_found);
}

TEST_F(SshHostProvider, WhatItCannotDoIsAClearUnsupportedError) {
  auto p = providers::ssh_host::make_ssh_host_provider(hosts());
  auto created = p->create_pod({});
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, ErrorCode::unsupported);
  EXPECT_NE(created.error().hint.find("hosts:"), std::string::npos);
  EXPECT_EQ(p->terminate_pod("box").error().code, ErrorCode::unsupported);
  EXPECT_EQ(p->stop_pod("box").error().code, ErrorCode::unsupported);
}

TEST_F(SshHostProvider, WaitUntilReadyReadsTheRealSshBanner) {
  auto p = providers::ssh_host::make_ssh_host_provider(hosts());
  testing::FakeClock clock;
  std::vector<std::string> lines;
  auto pod = providers::wait_until_ready(*p, "box", {}, clock,
                                         [&](const std::string& l) { lines.push_back(l); });
  ASSERT_TRUE(pod) << pod.error().message;
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("ready"), std::string::npos);
}

TEST(SshHosts, PodsCarryTheirHostsKeyComfyPortAndModelsRoot) {
  core::HostConfig own{.name = "own", .host = "h", .key = "/keys/own", .comfy_port = 9000,
                       .models_root = "/data/models"};
  core::HostConfig plain{.name = "plain", .host = "h2"};
  auto p = providers::ssh_host::make_ssh_host_provider({{"own", own}, {"plain", plain}},
                                                       "/autopod/id_ed25519");
  auto a = p->get_pod("own");
  ASSERT_TRUE(a && a->ssh);
  EXPECT_EQ(a->ssh->key, "/keys/own");
  EXPECT_EQ(a->comfy_port, 9000);
  EXPECT_EQ(a->models_root, "/data/models");
  EXPECT_EQ(p->get_pod("plain")->ssh->key, "/autopod/id_ed25519");
  auto caps = p->capabilities();
  EXPECT_FALSE(caps.create || caps.billing || caps.records || caps.managed_key);
}

TEST(ReadSshBanner, SshServerAnswersWithItsIdentification) {
  testing::TempDir dir;
  auto sshd = sandbox::SshdHarness::start(dir / "sshd");
  ASSERT_TRUE(sshd) << sshd.error().describe();
  auto banner = providers::read_ssh_banner("127.0.0.1", (*sshd)->port(), std::chrono::seconds(5));
  ASSERT_TRUE(banner) << banner.error().message;
  EXPECT_EQ(banner->rfind("SSH-2.0-OpenSSH", 0), 0u);
}

TEST(ReadSshBanner, NonSshServerIsAProtocolError) {
  int port = testing::free_port();
  sandbox::HttpServer server([](const sandbox::HttpExchange&) { return sandbox::HttpReply{}; });
  ASSERT_TRUE(server.start("127.0.0.1", port));
  // An HTTP server waits for the client to speak first: the banner read times out.
  auto banner = providers::read_ssh_banner("127.0.0.1", port, std::chrono::milliseconds(300));
  ASSERT_FALSE(banner);
  EXPECT_EQ(banner.error().code, ErrorCode::timeout);
}

TEST(ReadSshBanner, ClosedPortIsANetworkError) {
  auto banner = providers::read_ssh_banner("127.0.0.1", testing::free_port(), std::chrono::seconds(2));
  ASSERT_FALSE(banner);
  EXPECT_EQ(banner.error().code, ErrorCode::network);
}

// Given a sandbox whose pods' SSH is the real sshd, when a pod is created, then waiting for it
// sees PROVISIONING, STARTING and RUNNING and ends with an answering sshd.
TEST_F(SshdFixture, SandboxPodBecomesReadyThroughTheRealSshd) {
  sandbox::SandboxOptions o;
  o.ssh_port = sshd->port();
  o.ssh_user = sshd->user();
  o.authorized_keys = sshd->authorized_keys();
  o.provisioning_time = std::chrono::milliseconds(50);
  o.starting_time = std::chrono::milliseconds(50);
  sandbox::RunpodSandbox server(o);
  ASSERT_TRUE(server.start());
  providers::runpod::RunpodOptions ro;
  ro.api_url = server.url();
  ro.api_key = "k";
  auto p = providers::runpod::make_runpod_provider(ro, core::make_curl_transport(),
                                                   core::system_clock());
  providers::PodSpec s;
  s.name = "comfy";
  s.image = "img";
  s.gpu_types = {"NVIDIA A40"};
  s.public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTest test";
  auto pod = p->create_pod(s);
  ASSERT_TRUE(pod) << pod.error().message;
  providers::WaitOptions w;
  w.poll_interval = std::chrono::milliseconds(20);
  w.timeout = std::chrono::seconds(20);
  auto ready = providers::wait_until_ready(*p, pod->id, w, core::system_clock(), {});
  ASSERT_TRUE(ready) << ready.error().message;
  EXPECT_EQ(ready->ssh->port, sshd->port());
  // The pod's PUBLIC_KEY landed in authorized_keys, as RunPod's images do.
  auto keys = core::read_file(sshd->authorized_keys());
  EXPECT_NE(keys->find("FakeKeyForTest"), std::string::npos);
}

TEST(WaitUntilReady, TimesOutWithWhatItWasWaitingFor) {
  sandbox::SandboxOptions o;
  o.provisioning_time = std::chrono::hours(1);
  sandbox::RunpodSandbox server(o);
  ASSERT_TRUE(server.start());
  providers::runpod::RunpodOptions ro;
  ro.api_url = server.url();
  ro.api_key = "k";
  testing::FakeClock clock;
  auto p = providers::runpod::make_runpod_provider(ro, core::make_curl_transport(), clock);
  auto pod = p->create_pod({.name = "x", .image = "i", .gpu_types = {"NVIDIA A40"}});
  ASSERT_TRUE(pod);
  providers::WaitOptions w;
  w.timeout = std::chrono::seconds(30);
  auto ready = providers::wait_until_ready(*p, pod->id, w, clock, {});
  ASSERT_FALSE(ready);
  EXPECT_EQ(ready.error().code, ErrorCode::timeout);
  EXPECT_NE(ready.error().message.find("provisioning"), std::string::npos);
  EXPECT_NE(ready.error().hint.find("--timeout"), std::string::npos);
}

}  // namespace
}  // namespace autopod
