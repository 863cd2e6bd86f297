// The table of config.yaml's keys, and the views made from it: `config show` as YAML and as
// JSON, and `config init`'s commented example.

#include "core/config_table.hpp"

#include <yaml-cpp/yaml.h>

namespace autopod::core {
namespace {

#define FIELD(member) [](Config& c) -> FieldRef { return &c.member; }
#define HOST_FIELD(member) [](HostConfig& h) -> FieldRef { return &h.member; }

std::string check_cloud(const Config& c) {
  return c.pod.cloud == "secure" || c.pod.cloud == "community" ? ""
                                                               : "must be secure or community";
}
std::string check_gpu_count(const Config& c) {
  return c.pod.gpu_count >= 1 ? "" : "must be 1 or more";
}
std::string check_idle_action(const Config& c) {
  const auto& a = c.maintain.idle_action;
  return a == "auto" || a == "down" || a == "stop" || a == "notify"
             ? ""
             : "must be auto, down, stop or notify";
}
std::string check_budget_action(const Config& c) {
  const auto& a = c.maintain.budget_action;
  return a == "auto" || a == "down" || a == "stop" ? "" : "must be auto, down or stop";
}
std::string check_pod_idle_minutes(const Config& c) {
  for (const auto& [name, minutes] : c.maintain.pod_idle_minutes)
    if (minutes.empty() || minutes.find_first_not_of("0123456789") != std::string::npos)
      return name + ": expected whole minutes (0: never idle)";
  return "";
}
std::string check_not_negative(int value) { return value >= 0 ? "" : "must be 0 or more"; }
std::string check_budget(const Config& c) {
  return c.maintain.daily_budget >= 0 ? "" : "must be 0 (off) or more";
}

// Secrets are masked; an empty secret reads "(not set)".
struct Shown {
  bool secret;
  std::string text(const std::string& s) const {
    if (!secret) return s;
    return s.empty() ? "(not set)" : mask_secret(s);
  }
};

template <typename F>
void visit(const FieldRef& ref, F&& f) {
  std::visit([&](auto* p) { f(*p); }, ref);
}

void emit_value(YAML::Emitter& out, const FieldRef& ref, Shown shown) {
  visit(ref, [&](const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, std::string>) {
      out << shown.text(v);
    } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
      out << shown.text(v.string());
    } else if constexpr (std::is_same_v<T, int> || std::is_same_v<T, double>) {
      out << v;
    } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      out << YAML::Flow << YAML::BeginMap;
      for (const auto& [k, x] : v) out << YAML::Key << k << YAML::Value << shown.text(x);
      out << YAML::EndMap;
    } else {
      out << YAML::Flow << YAML::BeginSeq;
      for (const auto& x : v) {
        if constexpr (std::is_same_v<T, std::vector<std::string>>) out << x;
        else out << x.string();
      }
      out << YAML::EndSeq;
    }
  });
}

nlohmann::json json_value(const FieldRef& ref, Shown shown) {
  nlohmann::json j;
  visit(ref, [&](const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, std::string>) {
      j = shown.secret ? mask_secret(v) : v;
    } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
      j = shown.secret ? mask_secret(v.string()) : v.string();
    } else if constexpr (std::is_same_v<T, int> || std::is_same_v<T, double>) {
      j = v;
    } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      j = nlohmann::json::object();
      for (const auto& [k, x] : v) j[k] = shown.secret ? mask_secret(x) : x;
    } else {
      j = nlohmann::json::array();
      for (const auto& x : v) {
        if constexpr (std::is_same_v<T, std::vector<std::string>>) j.push_back(x);
        else j.push_back(x.string());
      }
    }
  });
  return j;
}

bool is_empty(const FieldRef& ref) {
  bool empty = false;
  visit(ref, [&](const auto& v) {
    using T = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<T, int> || std::is_same_v<T, double>) empty = false;
    else empty = v.empty();
  });
  return empty;
}

std::string flow_text(const FieldRef& ref) {
  YAML::Emitter out;
  emit_value(out, ref, Shown{false});
  return out.c_str();
}

// Plugin sections are handed to plugins as they are; they may hold keys, so views mask them.
nlohmann::json masked_plugins(const std::map<std::string, nlohmann::json>& plugins) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, section] : plugins) {
    out[name] = nlohmann::json::object();
    if (section.is_object())
      for (const auto& [k, v] : section.items())
        out[name][k] = mask_secret(v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = {
      {"provider", "AUTOPOD_PROVIDER", false, "", "which provider autopod talks to: runpod, ssh, or a plugin's name", FIELD(provider)},
      {"log_level", "AUTOPOD_LOG_LEVEL", false, "", "trace, debug, info, warn, error or off", FIELD(log_level)},
      {"plugin_dirs", "", false, "", "more directories with provider plugins (AUTOPOD_HOME/plugins comes first)", FIELD(plugin_dirs)},
      {"runpod.api_key", "RUNPOD_API_KEY", true, "rpa_...", "prefer the environment: export RUNPOD_API_KEY=... (never on a command line)", FIELD(runpod_api_key)},
      {"runpod.api_url", "RUNPOD_API_URL", false, "", "RunPod's REST API", FIELD(runpod_api_url)},
      {"hf.token", "HF_TOKEN", true, "hf_...", "Hugging Face read token for gated and private repos (prefer the environment: export HF_TOKEN=...)", FIELD(hf_token)},
      {"civitai.token", "CIVITAI_API_TOKEN", true, "", "Civitai API token for models that need a login (prefer the environment: export CIVITAI_API_TOKEN=...)", FIELD(civitai_token)},
      {"ssh.key", "", false, "~/.autopod/id_ed25519", "private key for the pods autopod creates (default: made on first use in AUTOPOD_HOME)", FIELD(ssh_key)},
      {"pod.name", "", false, "", "what `autopod connect` creates unless flags say otherwise", FIELD(pod.name)},
      {"pod.image", "", false, "", "container image", FIELD(pod.image)},
      {"pod.gpu_types", "", false, "", "tried in order until one has capacity", FIELD(pod.gpu_types)},
      {"pod.gpu_count", "", false, "", "gpus per pod", FIELD(pod.gpu_count), check_gpu_count},
      {"pod.cloud", "", false, "", "secure or community (network volumes need secure)", FIELD(pod.cloud), check_cloud},
      {"pod.container_disk_gb", "", false, "", "container disk in GB", FIELD(pod.container_disk_gb)},
      {"pod.volume", "", false, "my-models", "network volume id or name, mounted at mount_path", FIELD(pod.volume)},
      {"pod.mount_path", "", false, "", "where the network volume is mounted", FIELD(pod.mount_path)},
      {"pod.models_root", "", false, "/workspace/ComfyUI/models", "where ComfyUI's models are on the pod (default: <mount_path>/ComfyUI/models)", FIELD(pod.models_root)},
      {"pod.ports", "", false, "", "ports the pod exposes (22/tcp is needed for tunnels)", FIELD(pod.ports)},
      {"pod.env", "", true, "", "environment of the pod (values may be tokens: shown masked)", FIELD(pod.env)},
      {"pod.data_centers", "", false, "", "tried in order; empty: any; with a volume: the volume's", FIELD(pod.data_centers)},
      {"maintain.idle_minutes", "", false, "", "autopod maintain: a pod whose ComfyUI was idle this long gets idle_action (0: off)", FIELD(maintain.idle_minutes), [](const Config& c) { return check_not_negative(c.maintain.idle_minutes); }},
      {"maintain.pod_idle_minutes", "", false, "{comfy: 30}", "idle_minutes per pod name, winning over idle_minutes (0: never idle)", FIELD(maintain.pod_idle_minutes), check_pod_idle_minutes},
      {"maintain.idle_action", "", false, "", "auto (down with a volume, else stop), down, stop or notify", FIELD(maintain.idle_action), check_idle_action},
      {"maintain.grace_minutes", "", false, "", "a pod created less than this long ago is never idle", FIELD(maintain.grace_minutes), [](const Config& c) { return check_not_negative(c.maintain.grace_minutes); }},
      {"maintain.comfy_down_minutes", "", false, "", "ComfyUI down this long (since first seen down) runs restart_command", FIELD(maintain.comfy_down_minutes), [](const Config& c) { return check_not_negative(c.maintain.comfy_down_minutes); }},
      {"maintain.restart_command", "", false, "supervisorctl restart comfyui", "run on the pod over ssh to restart ComfyUI (empty: never)", FIELD(maintain.restart_command)},
      {"maintain.daily_budget", "", false, "", "USD per local day for all pods together; over it pods get budget_action (0: off)", FIELD(maintain.daily_budget), check_budget},
      {"maintain.budget_action", "", false, "", "auto (down with a volume, else stop), down or stop", FIELD(maintain.budget_action), check_budget_action},
  };
  return keys;
}

const std::vector<HostKey>& host_keys() {
  static const std::vector<HostKey> keys = {
      {"host", "203.0.113.7", "address (required)", HOST_FIELD(host)},
      {"port", "22", "ssh port", HOST_FIELD(port)},
      {"user", "root", "ssh user", HOST_FIELD(user)},
      {"key", "~/.ssh/id_ed25519", "private key (default: autopod's own)", HOST_FIELD(key)},
      {"comfy_port", "8188", "ComfyUI's port on the machine", HOST_FIELD(comfy_port)},
      {"models_root", "/workspace/ComfyUI/models", "where ComfyUI's models are", HOST_FIELD(models_root)},
  };
  return keys;
}

std::string_view section_of(std::string_view path) {
  auto dot = path.find('.');
  return dot == std::string_view::npos ? std::string_view() : path.substr(0, dot);
}

std::string_view name_of(std::string_view path) {
  auto dot = path.find('.');
  return dot == std::string_view::npos ? path : path.substr(dot + 1);
}

std::string render_config(const Config& config) {
  Config c = config;  // the table's accessors take a mutable Config
  auto src = [&](std::string_view key) {
    auto it = c.sources.find(std::string(key));
    return it == c.sources.end() ? std::string("default") : it->second;
  };
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "home" << YAML::Value << c.home.root().string() << YAML::Comment(src("home"));
  std::string_view open;
  for (const auto& key : config_keys()) {
    auto section = section_of(key.path);
    if (section != open) {
      if (!open.empty()) out << YAML::EndMap;
      out << YAML::Key << std::string(section) << YAML::Value << YAML::BeginMap;
      open = section;
    }
    out << YAML::Key << std::string(name_of(key.path)) << YAML::Value;
    emit_value(out, key.field(c), Shown{key.secret});
    out << YAML::Comment(src(key.path));
  }
  if (!open.empty()) out << YAML::EndMap;
  out << YAML::Key << std::string(k_hosts_section) << YAML::Value;
  if (c.hosts.empty()) out << YAML::Flow;
  out << YAML::BeginMap;
  for (auto& [name, h] : c.hosts) {
    out << YAML::Key << name << YAML::Value << YAML::BeginMap;
    for (const auto& key : host_keys()) {
      out << YAML::Key << std::string(key.name) << YAML::Value;
      emit_value(out, key.field(h), Shown{false});
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  auto plugins = masked_plugins(c.plugins);
  out << YAML::Key << std::string(k_plugins_section) << YAML::Value;
  if (plugins.empty()) out << YAML::Flow;
  out << YAML::BeginMap;
  for (const auto& [name, section] : plugins.items()) {
    out << YAML::Key << name << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (const auto& [k, v] : section.items()) out << YAML::Key << k << YAML::Value << v.get<std::string>();
    out << YAML::EndMap;
  }
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

nlohmann::json config_json(const Config& config) {
  Config c = config;
  nlohmann::json j = {{"home", c.home.root().string()}};
  for (const auto& key : config_keys()) {
    auto value = json_value(key.field(c), Shown{key.secret});
    auto section = section_of(key.path);
    if (section.empty()) j[std::string(key.path)] = value;
    else j[std::string(section)][std::string(name_of(key.path))] = value;
  }
  nlohmann::json hosts = nlohmann::json::object();
  for (auto& [name, h] : c.hosts)
    for (const auto& key : host_keys())
      hosts[name][std::string(key.name)] = json_value(key.field(h), Shown{false});
  j[std::string(k_hosts_section)] = hosts;
  j[std::string(k_plugins_section)] = masked_plugins(c.plugins);
  j["sources"] = c.sources;
  return j;
}

std::string example_config() {
  Config defaults;
  std::string out =
      "# autopod configuration. Precedence: command-line flag > environment > this file > "
      "default.\n# This file may hold secrets: keep it private (chmod 600).\n";
  std::string_view open = "(none)";
  for (const auto& key : config_keys()) {
    auto section = section_of(key.path);
    if (section != open) {
      out += "\n";
      if (!section.empty()) out += std::string(section) + ":\n";
      open = section;
    }
    std::string indent = section.empty() ? "" : "  ";
    auto field = key.field(defaults);
    out += indent + "# " + std::string(key.doc) + "\n";
    bool commented = key.secret ? !key.sample.empty() : is_empty(field) && !key.sample.empty();
    std::string value = commented ? std::string(key.sample) : flow_text(field);
    if (value.empty()) value = "\"\"";
    out += indent + (commented ? "# " : "") + std::string(name_of(key.path)) + ": " + value +
           (key.env.empty() ? "" : "   # env " + std::string(key.env)) + "\n";
  }
  out += "\n# Machines you already have, for `provider: ssh` (pods that are always running).\n";
  out += std::string(k_hosts_section) + ": {}\n#  gpubox:\n";
  for (const auto& key : host_keys())
    out += "#    " + std::string(key.name) + ": " + std::string(key.sample) + "   # " +
           std::string(key.doc) + "\n";
  out += "\n# Each plugin's own section, handed to it as JSON when it starts (providers/plugin_abi.h).\n";
  out += std::string(k_plugins_section) + ": {}\n#  vast:\n#    region: EU\n";
  return out;
}

}  // namespace autopod::core
