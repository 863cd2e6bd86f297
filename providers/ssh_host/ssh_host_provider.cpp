#include "providers/ssh_host/ssh_host_provider.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace autopod::providers::ssh_host {
namespace {

using core::ErrorCode;
using core::fail;

class SshHostProvider final : public Provider {
 public:
  SshHostProvider(std::map<std::string, core::HostConfig> hosts, std::filesystem::path key)
      : m_hosts(std::move(hosts)), m_default_key(std::move(key)) {}

  std::string name() const override { return "ssh"; }
  Capabilities capabilities() const override {
    return {.create = false, .stop_start = false, .terminate = false, .volumes = false,
            .billing = false, .records = false, .managed_key = false};
  }
  void set_deadline(core::Clock::time_point) override {}  // nothing here waits on a network

  Result<std::vector<Pod>> list_pods() override {
    std::vector<Pod> pods;
    for (const auto& [name, host] : m_hosts) pods.push_back(to_pod(host));
    return pods;
  }

  Result<Pod> get_pod(const std::string& id) override {
    auto it = m_hosts.find(id);
    if (it == m_hosts.end()) {
      std::vector<std::string> known;
      for (const auto& [name, h] : m_hosts) known.push_back(name);
      return fail(ErrorCode::not_found, "no host '" + id + "' in config.yaml",
                  known.empty() ? "declare it under hosts: in config.yaml (autopod config init)"
                                : fmt::format("hosts: {}", fmt::join(known, ", ")));
    }
    return to_pod(it->second);
  }

  Result<Pod> create_pod(const PodSpec&) override { return cannot("create pods"); }
  Result<Pod> start_pod(const std::string& id) override { return get_pod(id); }
  Result<Pod> stop_pod(const std::string&) override { return cannot("stop a machine"); }
  Status terminate_pod(const std::string&) override { return cannot("terminate a machine"); }
  Result<std::vector<Volume>> list_volumes() override { return std::vector<Volume>{}; }
  Result<Volume> get_volume(const std::string&) override { return cannot("manage volumes"); }
  Result<Volume> create_volume(const VolumeSpec&) override { return cannot("create volumes"); }
  Status delete_volume(const std::string&) override { return cannot("delete volumes"); }
  Result<std::vector<GpuType>> list_gpu_types() override { return cannot("list gpu types"); }
  Result<std::vector<DataCenter>> list_data_centers() override {
    return cannot("list data centers");
  }

 private:
  static core::Unexpected cannot(const std::string& what) {
    return fail(ErrorCode::unsupported, "the ssh provider cannot " + what,
                "ssh hosts are machines you run yourself; declare them under hosts: in "
                "config.yaml, or use --provider runpod");
  }

  Pod to_pod(const core::HostConfig& h) const {
    Pod p;
    p.id = h.name;
    p.name = h.name;
    p.provider = "ssh";
    p.status = PodStatus::running;
    p.ssh = SshEndpoint{h.host, h.port, h.user, h.key.empty() ? m_default_key : std::filesystem::path(h.key)};
    p.mount_path = h.models_root;
    p.comfy_port = h.comfy_port;
    p.models_root = h.models_root;
    p.ports = {std::to_string(h.port) + "/ssh", std::to_string(h.comfy_port) + "/http"};
    return p;
  }

  std::map<std::string, core::HostConfig> m_hosts;
  std::filesystem::path m_default_key;
};

}  // namespace

std::unique_ptr<Provider> make_ssh_host_provider(std::map<std::string, core::HostConfig> hosts,
                                                 std::filesystem::path default_key) {
  return std::make_unique<SshHostProvider>(std::move(hosts), std::move(default_key));
}

}  // namespace autopod::providers::ssh_host
