#pragma once
// A Provider over an in-memory set of pods, for the provider-independent flows (pod_ops,
// pod_spec). Records the specs it was asked to create.

#include <map>
#include <vector>

#include "providers/provider.hpp"

namespace autopod::testing {

class StubProvider final : public providers::Provider {
 public:
  std::map<std::string, providers::Pod> pods;
  std::vector<providers::PodSpec> created;
  providers::PodStatus created_status = providers::PodStatus::provisioning;

  std::string name() const override { return "stub"; }
  providers::Capabilities capabilities() const override { return {}; }
  void set_deadline(core::Clock::time_point) override {}
  core::Result<std::vector<providers::Pod>> list_pods() override {
    std::vector<providers::Pod> out;
    for (const auto& [id, p] : pods) out.push_back(p);
    return out;
  }
  core::Result<providers::Pod> get_pod(const std::string& id) override {
    auto it = pods.find(id);
    if (it == pods.end()) return core::fail(core::ErrorCode::not_found, "no pod " + id);
    return it->second;
  }
  core::Result<providers::Pod> create_pod(const providers::PodSpec& spec) override {
    created.push_back(spec);
    providers::Pod p;
    p.id = "stub" + std::to_string(created.size());
    p.name = spec.name;
    p.provider = "stub";
    p.status = created_status;
    pods[p.id] = p;
    return p;
  }
  core::Result<providers::Pod> start_pod(const std::string& id) override { return set(id, providers::PodStatus::starting); }
  core::Result<providers::Pod> stop_pod(const std::string& id) override { return set(id, providers::PodStatus::exited); }
  core::Status terminate_pod(const std::string& id) override {
    pods.erase(id);
    return {};
  }
  core::Result<std::vector<providers::Volume>> list_volumes() override { return volumes; }
  core::Result<providers::Volume> get_volume(const std::string&) override { return cannot(); }
  core::Result<providers::Volume> create_volume(const providers::VolumeSpec&) override { return cannot(); }
  core::Status delete_volume(const std::string&) override { return cannot(); }
  core::Result<std::vector<providers::GpuType>> list_gpu_types() override { return cannot(); }
  core::Result<std::vector<providers::DataCenter>> list_data_centers() override { return cannot(); }

  std::vector<providers::Volume> volumes;

 private:
  static core::Unexpected cannot() { return core::fail(core::ErrorCode::unsupported, "stub"); }
  core::Result<providers::Pod> set(const std::string& id, providers::PodStatus status) {
    auto it = pods.find(id);
    if (it == pods.end()) return core::fail(core::ErrorCode::not_found, "no pod " + id);
    it->second.status = status;
    return it->second;
  }
};

}  // namespace autopod::testing
