#include "core/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <set>
#include <sstream>

#include "core/fs.hpp"

namespace autopod::core {
namespace {

// Walks the YAML tree, turning every surprise into an Error with file:line:column and key.
class Reader {
 public:
  Reader(std::string file, Config& config) : m_file(std::move(file)), m_config(config) {}

  Error error_at(const YAML::Node& node, const std::string& key, const std::string& what) const {
    auto mark = node.Mark();
    std::string where = m_file;
    if (!mark.is_null()) where += ":" + std::to_string(mark.line + 1) + ":" +
                                  std::to_string(mark.column + 1);
    return make_error(ErrorCode::invalid_argument, where + ": " + key + ": " + what,
                      "fix " + m_file + " (autopod config init --print shows an example)");
  }

  std::string where(const YAML::Node& node) const {
    return "config.yaml:" + std::to_string(node.Mark().line + 1);
  }

  Status check_keys(const YAML::Node& map, const std::string& prefix,
                    const std::set<std::string>& known) const {
    if (!map.IsMap()) return error_at(map, prefix.empty() ? "(top)" : prefix, "expected a mapping");
    for (const auto& item : map) {
      auto key = item.first.as<std::string>();
      if (known.count(key)) continue;
      std::string did_you_mean;
      for (const auto& k : known)
        if (k.substr(0, 3) == key.substr(0, 3)) did_you_mean = k;
      return error_at(item.first, prefix.empty() ? key : prefix + "." + key,
                      "unknown key" +
                          (did_you_mean.empty() ? "" : " (did you mean '" + did_you_mean + "'?)"));
    }
    return {};
  }

  template <typename T>
  Status get(const YAML::Node& parent, const std::string& key, const std::string& path, T& out) {
    auto node = parent[key];
    if (!node) return {};
    if (node.IsNull()) return {};
    try {
      if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        if (!node.IsSequence()) return error_at(node, path, "expected a list of strings");
      }
      if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
        if (!node.IsMap()) return error_at(node, path, "expected a mapping of strings");
      }
      out = node.as<T>();
    } catch (const YAML::Exception&) {
      const char* type = std::is_same_v<T, int> ? "expected a whole number"
                         : std::is_same_v<T, std::string> ? "expected a string"
                                                          : "has the wrong type";
      return error_at(node, path, type);
    }
    m_config.sources[path] = where(node);
    return {};
  }

 private:
  std::string m_file;
  Config& m_config;
};

Status parse_file(const std::string& text, Config& config) {
  std::string file = config.home.config_file().string();
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return fail(ErrorCode::invalid_argument,
                file + ":" + std::to_string(e.mark.line + 1) + ":" +
                    std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg,
                "fix the syntax at that position");
  }
  if (!root || root.IsNull()) return {};
  Reader r(file, config);
  TRY(r.check_keys(root, "", {"provider", "log_level", "plugin_dirs", "runpod", "ssh", "pod",
                              "hosts"}));
  TRY(r.get(root, "provider", "provider", config.provider));
  TRY(r.get(root, "log_level", "log_level", config.log_level));
  std::vector<std::string> dirs;
  TRY(r.get(root, "plugin_dirs", "plugin_dirs", dirs));
  for (auto& d : dirs) config.plugin_dirs.emplace_back(d);
  if (auto rp = root["runpod"]; rp && !rp.IsNull()) {
    TRY(r.check_keys(rp, "runpod", {"api_key", "api_url"}));
    TRY(r.get(rp, "api_key", "runpod.api_key", config.runpod_api_key));
    TRY(r.get(rp, "api_url", "runpod.api_url", config.runpod_api_url));
  }
  if (auto ssh = root["ssh"]; ssh && !ssh.IsNull()) {
    TRY(r.check_keys(ssh, "ssh", {"key"}));
    std::string key;
    TRY(r.get(ssh, "key", "ssh.key", key));
    if (!key.empty()) {
      config.ssh_key = key;
      config.ssh_key_is_default = false;
    }
  }
  if (auto pod = root["pod"]; pod && !pod.IsNull()) {
    auto& p = config.pod;
    TRY(r.check_keys(pod, "pod", {"name", "image", "gpu_types", "gpu_count", "cloud",
                                  "container_disk_gb", "volume", "mount_path", "ports", "env",
                                  "data_centers"}));
    TRY(r.get(pod, "name", "pod.name", p.name));
    TRY(r.get(pod, "image", "pod.image", p.image));
    TRY(r.get(pod, "gpu_types", "pod.gpu_types", p.gpu_types));
    TRY(r.get(pod, "gpu_count", "pod.gpu_count", p.gpu_count));
    TRY(r.get(pod, "cloud", "pod.cloud", p.cloud));
    TRY(r.get(pod, "container_disk_gb", "pod.container_disk_gb", p.container_disk_gb));
    TRY(r.get(pod, "volume", "pod.volume", p.volume));
    TRY(r.get(pod, "mount_path", "pod.mount_path", p.mount_path));
    TRY(r.get(pod, "ports", "pod.ports", p.ports));
    TRY(r.get(pod, "env", "pod.env", p.env));
    TRY(r.get(pod, "data_centers", "pod.data_centers", p.data_centers));
    if (p.cloud != "secure" && p.cloud != "community")
      return r.error_at(pod["cloud"], "pod.cloud", "must be secure or community");
    if (p.gpu_count < 1) return r.error_at(pod["gpu_count"], "pod.gpu_count", "must be 1 or more");
  }
  if (auto hosts = root["hosts"]; hosts && !hosts.IsNull()) {
    if (!hosts.IsMap()) return r.error_at(hosts, "hosts", "expected a mapping of host names");
    for (const auto& item : hosts) {
      HostConfig h;
      h.name = item.first.as<std::string>();
      std::string prefix = "hosts." + h.name;
      TRY(r.check_keys(item.second, prefix,
                       {"host", "port", "user", "key", "comfy_port", "models_root"}));
      TRY(r.get(item.second, "host", prefix + ".host", h.host));
      TRY(r.get(item.second, "port", prefix + ".port", h.port));
      TRY(r.get(item.second, "user", prefix + ".user", h.user));
      TRY(r.get(item.second, "key", prefix + ".key", h.key));
      TRY(r.get(item.second, "comfy_port", prefix + ".comfy_port", h.comfy_port));
      TRY(r.get(item.second, "models_root", prefix + ".models_root", h.models_root));
      if (h.host.empty()) return r.error_at(item.second, prefix + ".host", "is required");
      if (h.port < 1 || h.port > 65535)
        return r.error_at(item.second["port"], prefix + ".port", "must be 1 to 65535");
      config.hosts[h.name] = h;
    }
  }
  return {};
}

std::string default_home() {
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.autopod";
}

void apply(std::string& field, const char* env_name, Config& config, const std::string& key) {
  const char* v = std::getenv(env_name);
  if (v && *v) {
    field = v;
    config.sources[key] = std::string("env ") + env_name;
  }
}

}  // namespace

std::string mask_secret(const std::string& secret) {
  if (secret.empty()) return "";
  if (secret.size() < 12) return "****";
  return "****" + secret.substr(secret.size() - 4);
}

Result<Config> load_config(const ConfigOverrides& overrides) {
  Config config;
  const char* env_home = std::getenv("AUTOPOD_HOME");
  config.home = Home(overrides.home              ? *overrides.home
                     : (env_home && *env_home) ? std::string(env_home)
                                               : default_home());
  config.sources["home"] = overrides.home ? "flag" : (env_home && *env_home) ? "env AUTOPOD_HOME"
                                                                             : "default";
  config.ssh_key = config.home.default_ssh_key();
  config.plugin_dirs.push_back(config.home.plugins());

  auto text = read_file(config.home.config_file());
  if (text) {
    TRY(parse_file(*text, config));
    int mode = file_mode(config.home.config_file());
    if (mode >= 0 && (mode & 077) != 0)
      config.warnings.push_back(config.home.config_file().string() + " is readable by others (mode " +
                                [&] {
                                  char buf[16];
                                  std::snprintf(buf, sizeof buf, "%04o", mode);
                                  return std::string(buf);
                                }() +
                                "); it may hold secrets: chmod 600 " +
                                config.home.config_file().string());
  } else if (text.error().code != ErrorCode::not_found) {
    return fail(text.error());
  }

  apply(config.provider, "AUTOPOD_PROVIDER", config, "provider");
  apply(config.log_level, "AUTOPOD_LOG_LEVEL", config, "log_level");
  apply(config.runpod_api_key, "RUNPOD_API_KEY", config, "runpod.api_key");
  apply(config.runpod_api_url, "RUNPOD_API_URL", config, "runpod.api_url");

  if (overrides.provider) {
    config.provider = *overrides.provider;
    config.sources["provider"] = "flag";
  }
  if (overrides.api_url) {
    config.runpod_api_url = *overrides.api_url;
    config.sources["runpod.api_url"] = "flag";
  }
  if (overrides.log_level) {
    config.log_level = *overrides.log_level;
    config.sources["log_level"] = "flag";
  }
  for (const auto& d : overrides.plugin_dirs) config.plugin_dirs.emplace_back(d);
  while (!config.runpod_api_url.empty() && config.runpod_api_url.back() == '/')
    config.runpod_api_url.pop_back();
  return config;
}

std::string render_config(const Config& c) {
  YAML::Emitter out;
  auto src = [&](const std::string& key) {
    auto it = c.sources.find(key);
    return it == c.sources.end() ? std::string("default") : it->second;
  };
  auto kv = [&](const std::string& key, const std::string& path, const auto& value) {
    out << YAML::Key << key << YAML::Value << value << YAML::Comment(src(path));
  };
  out << YAML::BeginMap;
  kv("home", "home", c.home.root().string());
  kv("provider", "provider", c.provider);
  kv("log_level", "log_level", c.log_level);
  out << YAML::Key << "plugin_dirs" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& d : c.plugin_dirs) out << d.string();
  out << YAML::EndSeq;
  out << YAML::Key << "runpod" << YAML::Value << YAML::BeginMap;
  kv("api_key", "runpod.api_key",
     c.runpod_api_key.empty() ? std::string("(not set)") : mask_secret(c.runpod_api_key));
  kv("api_url", "runpod.api_url", c.runpod_api_url);
  out << YAML::EndMap;
  out << YAML::Key << "ssh" << YAML::Value << YAML::BeginMap;
  kv("key", "ssh.key", c.ssh_key.string());
  out << YAML::EndMap;
  const auto& p = c.pod;
  out << YAML::Key << "pod" << YAML::Value << YAML::BeginMap;
  kv("name", "pod.name", p.name);
  kv("image", "pod.image", p.image);
  out << YAML::Key << "gpu_types" << YAML::Value << YAML::Flow << p.gpu_types
      << YAML::Comment(src("pod.gpu_types"));
  kv("gpu_count", "pod.gpu_count", p.gpu_count);
  kv("cloud", "pod.cloud", p.cloud);
  kv("container_disk_gb", "pod.container_disk_gb", p.container_disk_gb);
  kv("volume", "pod.volume", p.volume);
  kv("mount_path", "pod.mount_path", p.mount_path);
  out << YAML::Key << "ports" << YAML::Value << YAML::Flow << p.ports
      << YAML::Comment(src("pod.ports"));
  // env values may be tokens: show the names only
  out << YAML::Key << "env" << YAML::Value;
  if (p.env.empty()) out << YAML::Flow;
  out << YAML::BeginMap;
  for (const auto& [k, v] : p.env) out << YAML::Key << k << YAML::Value << mask_secret(v);
  out << YAML::EndMap;
  out << YAML::Key << "data_centers" << YAML::Value << YAML::Flow << p.data_centers;
  out << YAML::EndMap;
  out << YAML::Key << "hosts" << YAML::Value;
  if (c.hosts.empty()) out << YAML::Flow;
  out << YAML::BeginMap;
  for (const auto& [name, h] : c.hosts) {
    out << YAML::Key << name << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "host" << YAML::Value << h.host;
    out << YAML::Key << "port" << YAML::Value << h.port;
    out << YAML::Key << "user" << YAML::Value << h.user;
    out << YAML::Key << "key" << YAML::Value << h.key;
    out << YAML::Key << "comfy_port" << YAML::Value << h.comfy_port;
    out << YAML::Key << "models_root" << YAML::Value << h.models_root;
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string example_config() {
  return R"(# autopod configuration. Precedence: command-line flag > environment > this file > default.
# This file may hold secrets: keep it private (chmod 600).

# Which provider `autopod` talks to: runpod, ssh, or the name of a plugin.
provider: runpod            # env AUTOPOD_PROVIDER
log_level: warn             # trace, debug, info, warn, error, off

runpod:
  # Prefer the environment: export RUNPOD_API_KEY=... (never put keys on a command line).
  # api_key: rpa_...
  api_url: https://api.runpod.io   # env RUNPOD_API_URL

ssh:
  # key: ~/.autopod/id_ed25519   # default: autopod creates an ed25519 key here on first use

# What `autopod connect` creates unless flags say otherwise.
pod:
  name: autopod
  image: runpod/comfyui:latest
  gpu_types: ["NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000", "NVIDIA L40S"]  # tried in order
  gpu_count: 1
  cloud: secure               # secure or community (network volumes need secure)
  container_disk_gb: 50
  # volume: my-models         # network volume id or name, mounted at mount_path
  mount_path: /workspace
  ports: ["22/tcp", "8188/http"]
  env: {}
  data_centers: []            # empty: any; with a volume: the volume's data center

# Machines you already have, for `provider: ssh` (treated as pods that are always running).
hosts: {}
#  gpubox:
#    host: 203.0.113.7
#    port: 22
#    user: root
#    key: ~/.ssh/id_ed25519
#    comfy_port: 8188
#    models_root: /workspace/ComfyUI/models
)";
}

}  // namespace autopod::core
