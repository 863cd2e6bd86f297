#include "core/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <set>
#include <sstream>

#include "core/config_table.hpp"
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

  // Reads the value of `node` into the field, recording where it came from.
  Status get(const YAML::Node& node, const std::string& path, const FieldRef& field) {
    if (!node || node.IsNull()) return {};
    return std::visit([&](auto* out) { return get_into(node, path, *out); }, field);
  }

 private:
  template <typename T>
  Status get_into(const YAML::Node& node, const std::string& path, T& out) {
    try {
      if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                    std::is_same_v<T, std::vector<std::filesystem::path>>) {
        if (!node.IsSequence()) return error_at(node, path, "expected a list of strings");
        out.clear();
        for (const auto& item : node) out.emplace_back(item.as<std::string>());
      } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
        if (!node.IsMap()) return error_at(node, path, "expected a mapping of strings");
        out = node.as<T>();
      } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
        out = node.as<std::string>();
      } else {
        out = node.as<T>();
      }
    } catch (const YAML::Exception&) {
      const char* type = std::is_same_v<T, int>      ? "expected a whole number"
                         : std::is_same_v<T, double> ? "expected a number"
                         : std::is_same_v<T, std::string> ? "expected a string"
                                                          : "has the wrong type";
      return error_at(node, path, type);
    }
    m_config.sources[path] = where(node);
    return {};
  }

  std::string m_file;
  Config& m_config;
};

// Untyped YAML scalars become JSON numbers, booleans or null when they read as one.
nlohmann::json to_json(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& item : node) j[item.first.as<std::string>()] = to_json(item.second);
    return j;
  }
  if (node.IsSequence()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& item : node) j.push_back(to_json(item));
    return j;
  }
  if (!node.IsScalar()) return nullptr;
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted
  if (text == "true" || text == "false") return text == "true";
  if (text == "~" || text == "null") return nullptr;
  try {
    std::size_t used = 0;
    long long n = std::stoll(text, &used);
    if (used == text.size()) return n;
    double d = std::stod(text, &used);
    if (used == text.size()) return d;
  } catch (...) {
  }
  return text;
}

Status parse_table(Reader& r, const YAML::Node& root, Config& config) {
  std::set<std::string> top = {std::string(k_hosts_section), std::string(k_plugins_section)};
  std::map<std::string, std::set<std::string>> sections;
  for (const auto& key : config_keys()) {
    auto section = std::string(section_of(key.path));
    if (section.empty()) {
      top.insert(std::string(key.path));
    } else {
      top.insert(section);
      sections[section].insert(std::string(name_of(key.path)));
    }
  }
  TRY(r.check_keys(root, "", top));
  for (const auto& [section, names] : sections)
    if (auto node = root[section]; node && !node.IsNull()) TRY(r.check_keys(node, section, names));
  for (const auto& key : config_keys()) {
    auto section = std::string(section_of(key.path));
    YAML::Node parent = section.empty() ? root : root[section];
    if (!parent || parent.IsNull()) continue;
    auto node = parent[std::string(name_of(key.path))];
    TRY(r.get(node, std::string(key.path), key.field(config)));
    if (node && key.check)
      if (auto why = key.check(config); !why.empty())
        return r.error_at(node, std::string(key.path), why);
  }
  return {};
}

Status parse_hosts(Reader& r, const YAML::Node& hosts, Config& config) {
  if (!hosts || hosts.IsNull()) return {};
  if (!hosts.IsMap()) return r.error_at(hosts, "hosts", "expected a mapping of host names");
  std::set<std::string> names;
  for (const auto& key : host_keys()) names.insert(std::string(key.name));
  for (const auto& item : hosts) {
    HostConfig h;
    h.name = item.first.as<std::string>();
    std::string prefix = "hosts." + h.name;
    TRY(r.check_keys(item.second, prefix, names));
    for (const auto& key : host_keys())
      TRY(r.get(item.second[std::string(key.name)], prefix + "." + std::string(key.name),
                key.field(h)));
    if (h.host.empty()) return r.error_at(item.second, prefix + ".host", "is required");
    if (h.port < 1 || h.port > 65535)
      return r.error_at(item.second["port"], prefix + ".port", "must be 1 to 65535");
    config.hosts[h.name] = h;
  }
  return {};
}

Status parse_plugins(Reader& r, const YAML::Node& plugins, Config& config) {
  if (!plugins || plugins.IsNull()) return {};
  if (!plugins.IsMap()) return r.error_at(plugins, "plugins", "expected a mapping of plugin names");
  for (const auto& item : plugins) {
    auto name = item.first.as<std::string>();
    if (!item.second.IsMap() && !item.second.IsNull())
      return r.error_at(item.second, "plugins." + name, "expected a mapping");
    config.plugins[name] = item.second.IsNull() ? nlohmann::json::object() : to_json(item.second);
    config.sources["plugins." + name] = r.where(item.second);
  }
  return {};
}

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
  TRY(parse_table(r, root, config));
  TRY(parse_hosts(r, root[std::string(k_hosts_section)], config));
  TRY(parse_plugins(r, root[std::string(k_plugins_section)], config));
  return {};
}

std::string default_home() {
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.autopod";
}

// The environment variables of the table's keys (string keys only).
void apply_environment(Config& config) {
  for (const auto& key : config_keys()) {
    if (key.env.empty()) continue;
    const char* v = std::getenv(std::string(key.env).c_str());
    if (!v || !*v) continue;
    FieldRef ref = key.field(config);
    if (auto* field = std::get_if<std::string*>(&ref)) {
      **field = v;
      config.sources[std::string(key.path)] = "env " + std::string(key.env);
    }
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
  config.ssh_key_is_default = config.ssh_key.empty();
  if (config.ssh_key_is_default) config.ssh_key = config.home.default_ssh_key();
  config.plugin_dirs.insert(config.plugin_dirs.begin(), config.home.plugins());
  apply_environment(config);

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

}  // namespace autopod::core
