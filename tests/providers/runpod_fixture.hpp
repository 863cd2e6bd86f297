#pragma once
// The RunPod client over a fake transport and a fake clock: the fixture of
// runpod_provider_test.cpp and runpod_create_test.cpp, with RunPod v2 bodies to answer with.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "providers/runpod/runpod_provider.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_transport.hpp"

namespace autopod::testing {

using nlohmann::json;

inline std::string pod_body(const std::string& id, const std::string& name,
                     const std::string& status = "PROVISIONING") {
  return json{{"id", id}, {"name", name}, {"status", status}, {"image", "img"},
              {"gpu", {{"id", "NVIDIA A40"}, {"count", 1}}}, {"cloud", "SECURE"},
              {"dataCenterId", "EU-RO-1"}, {"cost", 0.4}, {"ports", {"22/tcp"}},
              {"mounts", json::object()},
              {"ssh", {{"proxy", nullptr},
                       {"direct", status == "RUNNING"
                                      ? json{{"host", "1.2.3.4"}, {"port", 10341},
                                             {"username", "root"}, {"command", "ssh"}}
                                      : json(nullptr)}}},
              {"createdAt", "2026-11-21T00:00:00Z"}}
      .dump();
}

inline const char* const k_catalog =
    R"({"gpus":[{"id":"NVIDIA A40","name":"A40","memory":48,"price":{"secure":0.4,"community":0.35}},
               {"id":"NVIDIA L40S","name":"L40S","memory":48,"price":{"secure":0.86,"community":0.79}}]})";

inline std::string problem(int status, const std::string& detail) {
  return json{{"title", "t"}, {"status", status}, {"detail", detail}}.dump();
}

struct RunpodFixture : ::testing::Test {
  FakeTransport* transport = nullptr;
  FakeClock clock;
  std::vector<std::string> progress;
  std::unique_ptr<providers::Provider> provider;

  void SetUp() override { make("rpa_testkey"); }
  void make(const std::string& key) {
    auto t = std::make_unique<FakeTransport>(&clock);
    transport = t.get();
    providers::runpod::RunpodOptions o;
    o.api_url = "http://runpod.test";
    o.api_key = key;
    o.ssh_key = "/home/me/.autopod/id_ed25519";
    provider = providers::runpod::make_runpod_provider(
        o, std::move(t), clock, [this](const std::string& l) { progress.push_back(l); });
  }
  providers::PodSpec spec() {
    providers::PodSpec s;
    s.name = "comfy";
    s.image = "img";
    s.gpu_types = {"A40", "NVIDIA L40S"};
    return s;
  }
};

}  // namespace autopod::testing
