// Every request shape the RunPod client makes, judged by a Prism mock serving RunPod's official
// OpenAPI v2 spec (tests/data/runpod-openapi-v2.json, copied byte for byte from the reference).
// Any violation Prism reports in its sl-violations header fails the test.

#include <gtest/gtest.h>
#include <unistd.h>

#include <mutex>

#include "providers/runpod/runpod_provider.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

using nlohmann::json;

// Passes requests to libcurl and keeps what Prism said about each.
class RecordingTransport final : public core::HttpTransport {
 public:
  struct Exchange {
    std::string what;
    int status = 0;
    std::string violations;
  };
  explicit RecordingTransport(std::vector<Exchange>& log) : m_log(log) {}
  core::Result<core::HttpResponse> send(const core::HttpRequest& request) override {
    auto r = m_inner->send(request);
    if (r) {
      auto path = request.url.substr(request.url.find("/v2"));
      m_log.push_back({request.method + " " + path, r->status, r->header("sl-violations")});
    }
    return r;
  }

 private:
  std::unique_ptr<core::HttpTransport> m_inner = core::make_curl_transport();
  std::vector<Exchange>& m_log;
};

std::string prism_path() {
  if (const char* p = std::getenv("PRISM_BIN")) return p;
  return AUTOPOD_TEST_PRISM_BIN;
}

class RunpodContract : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string prism = prism_path();
    if (::access(prism.c_str(), X_OK) != 0) {
      s_problem = "prism is not installed at " + prism +
                  "; install it with: npm install --prefix build/prism @stoplight/prism-cli@5.14.2 "
                  "(scripts/test does this), or set PRISM_BIN";
      return;
    }
    s_port = testing::free_port();
    auto child = testing::Child::start({prism, "mock", AUTOPOD_TEST_RUNPOD_SPEC, "-p",
                                        std::to_string(s_port), "-h", "127.0.0.1"},
                                       "Prism is listening", 120);
    if (!child) {
      s_problem = child.error().message;
      return;
    }
    s_prism = std::move(child).value().release();
  }
  static void TearDownTestSuite() {
    delete s_prism;
    s_prism = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(s_problem.empty()) << s_problem;  // a missing tool fails, never skips
    providers::runpod::RunpodOptions o;
    o.api_url = "http://127.0.0.1:" + std::to_string(s_port);
    o.api_key = "rpa_contract_test";
    provider = providers::runpod::make_runpod_provider(
        o, std::make_unique<RecordingTransport>(log), core::system_clock());
  }

  void TearDown() override {
    ASSERT_FALSE(log.empty());
    for (const auto& e : log) {
      EXPECT_TRUE(e.violations.empty()) << e.what << " violates the spec: " << e.violations;
      EXPECT_LT(e.status, 300) << e.what << " answered " << e.status;
    }
  }

  std::vector<RecordingTransport::Exchange> log;
  std::unique_ptr<providers::Provider> provider;
  static inline testing::Child* s_prism = nullptr;
  static inline int s_port = 0;
  static inline std::string s_problem;
};

TEST_F(RunpodContract, ListAndGetPods) {
  auto pods = provider->list_pods();
  ASSERT_TRUE(pods) << pods.error().message;  // and the spec's own example parses
  ASSERT_FALSE(pods->empty());
  ASSERT_TRUE(provider->get_pod((*pods)[0].id)) << "get";
}

TEST_F(RunpodContract, CreatePodWithVolumeEnvPortsAndDataCenter) {
  providers::PodSpec s;
  s.name = "autopod-contract";
  s.image = "runpod/comfyui:latest";
  s.gpu_types = {"NVIDIA GeForce RTX 4090"};
  s.gpu_count = 2;
  s.cloud = "secure";
  s.container_disk_gb = 40;
  s.volume_id = "2q9m7x4c";
  s.mount_path = "/workspace";
  s.ports = {"22/tcp", "8188/http", "8888/http"};
  s.env = {{"HF_HOME", "/workspace/hf"}};
  s.data_centers = {"US-KS-2"};
  s.public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExample autopod";
  auto pod = provider->create_pod(s);
  ASSERT_TRUE(pod) << pod.error().message;
}

TEST_F(RunpodContract, CreateMinimalCommunityPod) {
  providers::PodSpec s;
  s.name = "minimal";
  s.image = "img";
  s.gpu_types = {"NVIDIA GeForce RTX 4090"};
  s.cloud = "community";
  auto pod = provider->create_pod(s);
  ASSERT_TRUE(pod) << pod.error().message;
}

TEST_F(RunpodContract, LifecycleActionsAndTerminate) {
  ASSERT_TRUE(provider->stop_pod("7h9k2m4n6p"));
  ASSERT_TRUE(provider->start_pod("7h9k2m4n6p"));
  ASSERT_TRUE(provider->terminate_pod("7h9k2m4n6p"));
}

TEST_F(RunpodContract, NetworkVolumes) {
  auto volumes = provider->list_volumes();
  ASSERT_TRUE(volumes) << volumes.error().message;
  ASSERT_TRUE(provider->get_volume("2q9m7x4c"));
  ASSERT_TRUE(provider->create_volume({"models", 100, "US-KS-2", "STANDARD"}));
  ASSERT_TRUE(provider->create_volume({"models2", 10, "EU-RO-1", ""}));
  ASSERT_TRUE(provider->delete_volume("2q9m7x4c"));
}

TEST_F(RunpodContract, Catalog) {
  auto gpus = provider->list_gpu_types();
  ASSERT_TRUE(gpus) << gpus.error().message;
  ASSERT_FALSE(gpus->empty());
  ASSERT_TRUE(provider->list_data_centers());
}

}  // namespace
}  // namespace autopod
