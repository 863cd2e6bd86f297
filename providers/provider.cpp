#include <algorithm>
#include <cctype>
#include <mutex>

#include "providers/provider.hpp"

#include "core/text.hpp"

namespace autopod::providers {

std::string to_string(PodStatus status) {
  switch (status) {
    case PodStatus::provisioning: return "provisioning";
    case PodStatus::starting: return "starting";
    case PodStatus::running: return "running";
    case PodStatus::exited: return "exited";
    case PodStatus::error: return "error";
    case PodStatus::terminated: return "terminated";
    case PodStatus::unknown: break;
  }
  return "unknown";
}

PodStatus parse_pod_status(const std::string& text) {
  std::string s = core::lowercase(text);
  for (auto st : {PodStatus::provisioning, PodStatus::starting, PodStatus::running,
                  PodStatus::exited, PodStatus::error, PodStatus::terminated})
    if (to_string(st) == s) return st;
  return PodStatus::unknown;
}

// ---- JSON shapes ---------------------------------------------------------------------------

namespace {

nlohmann::json endpoint_json(const SshEndpoint& e) {
  return {{"host", e.host}, {"port", e.port}, {"user", e.user}, {"key", e.key.string()}};
}

SshEndpoint endpoint_from(const nlohmann::json& j) {
  return SshEndpoint{j.at("host").get<std::string>(), j.at("port").get<int>(),
                     j.value("user", "root"), j.value("key", "")};
}

}  // namespace


void to_json(nlohmann::json& j, const Pod& p) {
  j = {{"id", p.id},
       {"name", p.name},
       {"provider", p.provider},
       {"status", to_string(p.status)},
       {"image", p.image},
       {"gpu_type", p.gpu_type},
       {"gpu_count", p.gpu_count},
       {"cloud", p.cloud},
       {"data_center", p.data_center},
       {"cost_per_hr", p.cost_per_hr},
       {"volume_id", p.volume_id},
       {"mount_path", p.mount_path},
       {"ports", p.ports},
       {"ssh", p.ssh ? endpoint_json(*p.ssh) : nlohmann::json(nullptr)},
       {"created_at", p.created_at},
       {"comfy_port", p.comfy_port},
       {"models_root", p.models_root}};
}

void from_json(const nlohmann::json& j, Pod& p) {
  p.id = j.at("id").get<std::string>();
  p.name = j.value("name", "");
  p.provider = j.value("provider", "");
  p.status = parse_pod_status(j.value("status", "unknown"));
  p.image = j.value("image", "");
  p.gpu_type = j.value("gpu_type", "");
  p.gpu_count = j.value("gpu_count", 0);
  p.cloud = j.value("cloud", "");
  p.data_center = j.value("data_center", "");
  p.cost_per_hr = j.value("cost_per_hr", 0.0);
  p.volume_id = j.value("volume_id", "");
  p.mount_path = j.value("mount_path", "");
  p.ports = j.value("ports", std::vector<std::string>{});
  if (j.contains("ssh") && j["ssh"].is_object()) p.ssh = endpoint_from(j["ssh"]);
  p.created_at = j.value("created_at", "");
  p.comfy_port = j.value("comfy_port", 8188);
  p.models_root = j.value("models_root", "");
}

void to_json(nlohmann::json& j, const Volume& v) {
  j = {{"id", v.id}, {"name", v.name}, {"size_gb", v.size_gb},
       {"data_center", v.data_center}, {"type", v.type}};
}

void from_json(const nlohmann::json& j, Volume& v) {
  v.id = j.at("id").get<std::string>();
  v.name = j.value("name", "");
  v.size_gb = j.value("size_gb", 0);
  v.data_center = j.value("data_center", "");
  v.type = j.value("type", "");
}

void to_json(nlohmann::json& j, const GpuType& g) {
  j = {{"id", g.id}, {"name", g.name}, {"memory_gb", g.memory_gb},
       {"price_secure", g.price_secure}, {"price_community", g.price_community},
       {"availability", g.availability}};
}

void from_json(const nlohmann::json& j, GpuType& g) {
  g.id = j.at("id").get<std::string>();
  g.name = j.value("name", "");
  g.memory_gb = j.value("memory_gb", 0);
  g.price_secure = j.value("price_secure", 0.0);
  g.price_community = j.value("price_community", 0.0);
  g.availability = j.value("availability", "");
}

void to_json(nlohmann::json& j, const DataCenter& d) {
  j = {{"id", d.id}, {"name", d.name}, {"region", d.region}};
}

void from_json(const nlohmann::json& j, DataCenter& d) {
  d.id = j.at("id").get<std::string>();
  d.name = j.value("name", "");
  d.region = j.value("region", "");
}

void to_json(nlohmann::json& j, const PodSpec& s) {
  j = {{"name", s.name}, {"image", s.image}, {"gpu_types", s.gpu_types},
       {"gpu_count", s.gpu_count}, {"cloud", s.cloud},
       {"container_disk_gb", s.container_disk_gb}, {"volume_id", s.volume_id},
       {"mount_path", s.mount_path}, {"ports", s.ports}, {"env", s.env},
       {"data_centers", s.data_centers}, {"public_key", s.public_key}};
}

void from_json(const nlohmann::json& j, PodSpec& s) {
  s.name = j.at("name").get<std::string>();
  s.image = j.value("image", "");
  s.gpu_types = j.value("gpu_types", std::vector<std::string>{});
  s.gpu_count = j.value("gpu_count", 1);
  s.cloud = j.value("cloud", "secure");
  s.container_disk_gb = j.value("container_disk_gb", 50);
  s.volume_id = j.value("volume_id", "");
  s.mount_path = j.value("mount_path", "/workspace");
  s.ports = j.value("ports", std::vector<std::string>{"22/tcp", "8188/http"});
  s.env = j.value("env", std::map<std::string, std::string>{});
  s.data_centers = j.value("data_centers", std::vector<std::string>{});
  s.public_key = j.value("public_key", "");
}

void to_json(nlohmann::json& j, const VolumeSpec& s) {
  j = {{"name", s.name}, {"size_gb", s.size_gb}, {"data_center", s.data_center},
       {"type", s.type}};
}

void from_json(const nlohmann::json& j, VolumeSpec& s) {
  s.name = j.at("name").get<std::string>();
  s.size_gb = j.value("size_gb", 0);
  s.data_center = j.value("data_center", "");
  s.type = j.value("type", "");
}

// ---- registry ------------------------------------------------------------------------------

namespace {
struct Registry {
  std::mutex mutex;
  std::map<std::string, ProviderFactory> factories;
};
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

void register_provider(const std::string& name, ProviderFactory factory) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  r.factories[name] = std::move(factory);
}

std::vector<std::string> provider_names() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, f] : r.factories) names.push_back(name);
  return names;
}

Result<std::unique_ptr<Provider>> make_provider(const std::string& name,
                                                const ProviderContext& context) {
  ProviderFactory factory;
  {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    std::string known;
    for (const auto& n : provider_names()) known += (known.empty() ? "" : ", ") + n;
    return core::fail(core::ErrorCode::not_found, "no provider named '" + name + "'",
                      "known providers: " + known +
                          "; plugins load from AUTOPOD_HOME/plugins or --plugin-dir");
  }
  return factory(context);
}

}  // namespace autopod::providers
