// The real RunPod client (libcurl) against the sandbox over loopback, with injected faults.

#include <gtest/gtest.h>

#include "core/retry.hpp"
#include "providers/pod_ops.hpp"
#include "providers/runpod/runpod_provider.hpp"
#include "sandbox/runpod_sandbox.hpp"

namespace autopod {
namespace {

using core::ErrorCode;
using providers::PodSpec;
using sandbox::Fault;

struct SandboxFixture : ::testing::Test {
  std::unique_ptr<sandbox::RunpodSandbox> server;
  std::unique_ptr<providers::Provider> provider;

  void SetUp() override {
    sandbox::SandboxOptions o;
    o.api_key = "rpa_sandbox_key";
    o.provisioning_time = std::chrono::milliseconds(0);
    o.starting_time = std::chrono::milliseconds(0);
    server = std::make_unique<sandbox::RunpodSandbox>(o);
    ASSERT_TRUE(server->start());
    provider = make("rpa_sandbox_key");
  }

  std::unique_ptr<providers::Provider> make(const std::string& key) {
    providers::runpod::RunpodOptions ro;
    ro.api_url = server->url();
    ro.api_key = key;
    ro.retry.backoff.first = std::chrono::milliseconds(10);  // real sleeps: keep them short
    return providers::runpod::make_runpod_provider(ro, core::make_curl_transport(),
                                                   core::system_clock());
  }

  PodSpec spec(const std::string& name = "comfy") {
    PodSpec s;
    s.name = name;
    s.image = "runpod/comfyui:latest";
    s.gpu_types = {"NVIDIA A40"};
    return s;
  }

  std::size_t creates() const {
    std::size_t n = 0;
    auto snapshot = server->snapshot();  // a temporary would dangle in the range-for
    for (const auto& r : snapshot["requests"])
      if (r["method"] == "POST" && r["path"] == "/v2/pods") ++n;
    return n;
  }
};

using RunpodAgainstSandbox = SandboxFixture;

TEST_F(RunpodAgainstSandbox, PodLifecycle) {
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().message;
  auto got = provider->get_pod(pod->id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, providers::PodStatus::running);
  ASSERT_TRUE(got->ssh);
  auto stopped = provider->stop_pod(pod->id);
  ASSERT_TRUE(stopped) << stopped.error().message;
  EXPECT_EQ(stopped->status, providers::PodStatus::exited);
  EXPECT_FALSE(stopped->ssh);
  EXPECT_EQ(stopped->cost_per_hr, 0);
  auto started = provider->start_pod(pod->id);
  ASSERT_TRUE(started) << started.error().message;
  ASSERT_TRUE(provider->terminate_pod(pod->id));
  EXPECT_EQ(provider->get_pod(pod->id).error().code, ErrorCode::not_found);
}

TEST_F(RunpodAgainstSandbox, WrongKeyIsRefused) {
  auto other = make("rpa_wrong");
  auto r = other->list_pods();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::auth);
  EXPECT_EQ(r.error().http_status, 401);
}

TEST_F(RunpodAgainstSandbox, RateLimitIsRetriedAfterRetryAfter) {
  server->add_fault({.method = "GET", .path = "/v2/pods", .kind = "status", .status = 429,
                     .retry_after_secs = 1});
  auto t0 = std::chrono::steady_clock::now();
  auto r = provider->list_pods();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(950));
}

TEST_F(RunpodAgainstSandbox, ServerErrorIsRetried) {
  server->add_fault({.method = "GET", .path = "/v2/pods", .kind = "status", .status = 500,
                     .count = 2});
  EXPECT_TRUE(provider->list_pods());
}

TEST_F(RunpodAgainstSandbox, DroppedConnectionIsRetried) {
  server->add_fault({.method = "GET", .path = "/v2/network-volumes", .kind = "drop"});
  EXPECT_TRUE(provider->list_volumes());
}

TEST_F(RunpodAgainstSandbox, SlowAnswerStillArrives) {
  server->add_fault({.method = "GET", .path = "/v2/pods", .kind = "slow", .delay_ms = 300});
  EXPECT_TRUE(provider->list_pods());
}

TEST_F(RunpodAgainstSandbox, MalformedJsonIsAClearProtocolError) {
  server->add_fault({.method = "GET", .path = "/v2/pods", .kind = "malformed"});
  auto r = provider->list_pods();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::protocol);
}

// Given the sandbox creates the pod and then drops the connection, when autopod creates,
// then exactly one pod exists and autopod returns it.
TEST_F(RunpodAgainstSandbox, LostCreateAnswerLeavesExactlyOnePod) {
  server->add_fault({.method = "POST", .path = "/v2/pods", .kind = "lost_answer"});
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().message;
  auto pods = provider->list_pods();
  ASSERT_EQ(pods->size(), 1u);
  EXPECT_EQ((*pods)[0].id, pod->id);
  EXPECT_EQ(creates(), 1u);
}

TEST_F(RunpodAgainstSandbox, DroppedCreateThatNeverHappenedIsSentAgain) {
  server->add_fault({.method = "POST", .path = "/v2/pods", .kind = "drop"});
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(pod) << pod.error().message;
  EXPECT_EQ(provider->list_pods()->size(), 1u);
  EXPECT_EQ(creates(), 2u);
}

TEST_F(RunpodAgainstSandbox, CapacityFallsThroughToTheNextGpu) {
  server->set_capacity("NVIDIA A40", "*", false);
  auto s = spec();
  s.gpu_types = {"NVIDIA A40", "NVIDIA RTX A6000"};
  auto pod = provider->create_pod(s);
  ASSERT_TRUE(pod) << pod.error().message;
  EXPECT_EQ(pod->gpu_type, "NVIDIA RTX A6000");
}

TEST_F(RunpodAgainstSandbox, EmptyBalanceIsAPaymentError) {
  server->set_balance(0);
  auto pod = provider->create_pod(spec());
  ASSERT_FALSE(pod);
  EXPECT_EQ(pod.error().code, ErrorCode::payment);
  EXPECT_EQ(creates(), 1u);
}

TEST_F(RunpodAgainstSandbox, StartWithoutAFreeHostGpuIsNoCapacity) {
  auto pod = provider->create_pod(spec());
  ASSERT_TRUE(provider->stop_pod(pod->id));
  server->set_host_gpus_free(false);
  auto started = provider->start_pod(pod->id);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, ErrorCode::no_capacity);
  EXPECT_NE(started.error().hint.find("autopod down"), std::string::npos);
}

TEST_F(RunpodAgainstSandbox, VolumeInAnotherDataCenterFailsBeforeAnyCreate) {
  auto vol = provider->create_volume({"models", 50, "US-KS-2", ""});
  ASSERT_TRUE(vol) << vol.error().message;
  auto s = spec();
  s.volume_id = "models";
  s.data_centers = {"EU-RO-1"};
  auto placed = providers::place_with_volume(*provider, s);
  ASSERT_FALSE(placed);
  EXPECT_EQ(placed.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(placed.error().message.find("US-KS-2"), std::string::npos);
  EXPECT_EQ(creates(), 0u);
}

TEST_F(RunpodAgainstSandbox, VolumePinsThePodToItsDataCenter) {
  auto vol = provider->create_volume({"models", 50, "CA-MTL-1", ""});
  ASSERT_TRUE(vol);
  auto connected = providers::connect_pod(*provider, [&] {
    auto s = spec();
    s.volume_id = "models";  // by name
    return s;
  }(), {});
  ASSERT_TRUE(connected) << connected.error().message;
  EXPECT_EQ(connected->pod.data_center, "CA-MTL-1");
  EXPECT_EQ(connected->pod.volume_id, vol->id);
  EXPECT_EQ(connected->pod.mount_path, "/workspace");
}

TEST_F(RunpodAgainstSandbox, ConnectReusesAndRestartsTheNamedPod) {
  auto first = providers::connect_pod(*provider, spec(), {});
  ASSERT_TRUE(first);
  EXPECT_EQ(first->outcome, providers::ConnectOutcome::created);
  auto again = providers::connect_pod(*provider, spec(), {});
  EXPECT_EQ(again->outcome, providers::ConnectOutcome::reused);
  EXPECT_EQ(again->pod.id, first->pod.id);
  ASSERT_TRUE(provider->stop_pod(first->pod.id));
  auto restarted = providers::connect_pod(*provider, spec(), {});
  ASSERT_TRUE(restarted);
  EXPECT_EQ(restarted->outcome, providers::ConnectOutcome::started);
  EXPECT_EQ(creates(), 1u);
}

TEST_F(RunpodAgainstSandbox, VolumeCreateListDelete) {
  auto vol = provider->create_volume({"models", 100, "EU-RO-1", "STANDARD"});
  ASSERT_TRUE(vol) << vol.error().message;
  EXPECT_EQ(vol->size_gb, 100);
  EXPECT_EQ(provider->list_volumes()->size(), 1u);
  EXPECT_EQ(provider->get_volume(vol->id)->data_center, "EU-RO-1");
  ASSERT_TRUE(provider->delete_volume(vol->id));
  EXPECT_TRUE(provider->list_volumes()->empty());
}

TEST_F(RunpodAgainstSandbox, LostVolumeCreateAnswerLeavesOneVolume) {
  server->add_fault({.method = "POST", .path = "/v2/network-volumes", .kind = "lost_answer"});
  auto vol = provider->create_volume({"models", 20, "EU-RO-1", ""});
  ASSERT_TRUE(vol) << vol.error().message;
  EXPECT_EQ(provider->list_volumes()->size(), 1u);
}

TEST_F(RunpodAgainstSandbox, GpuCatalogHasPrices) {
  auto gpus = provider->list_gpu_types();
  ASSERT_TRUE(gpus);
  ASSERT_FALSE(gpus->empty());
  EXPECT_GT(gpus->front().price_secure, 0);
  EXPECT_GT(gpus->front().memory_gb, 0);
  EXPECT_FALSE(provider->list_data_centers()->empty());
}

TEST_F(RunpodAgainstSandbox, FindPodByIdNameOrAlone) {
  EXPECT_EQ(providers::find_pod(*provider, "").error().code, ErrorCode::not_found);
  auto a = provider->create_pod(spec("a"));
  EXPECT_EQ(providers::find_pod(*provider, "")->id, a->id);
  auto b = provider->create_pod(spec("b"));
  EXPECT_EQ(providers::find_pod(*provider, "").error().code, ErrorCode::invalid_argument);
  EXPECT_EQ(providers::find_pod(*provider, "b")->id, b->id);
  EXPECT_EQ(providers::find_pod(*provider, a->id)->name, "a");
  auto missing = providers::find_pod(*provider, "zzz");
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);
  EXPECT_NE(missing.error().hint.find("a (" + a->id + ")"), std::string::npos);
}

}  // namespace
}  // namespace autopod
