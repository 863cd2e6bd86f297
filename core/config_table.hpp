#pragma once
// Internal to core/: config.yaml's keys, listed once. Parsing (with its unknown-key checks), the
// environment, `config show` (YAML and JSON) and `config init` (the commented example) are all
// made from these rows, as ccache does with its config table.

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/config.hpp"

namespace autopod::core {

// Where a key's value lives in Config (or in one HostConfig).
using FieldRef = std::variant<std::string*, int*, double*, std::filesystem::path*, std::vector<std::string>*,
                              std::vector<std::filesystem::path>*,
                              std::map<std::string, std::string>*>;

struct ConfigKey {
  std::string_view path;     // "pod.gpu_types": section "pod", name "gpu_types"
  std::string_view env;      // environment variable that overrides the file; empty: none
  bool secret;               // never shown unmasked (map values: each one masked)
  std::string_view sample;   // shown commented out in the example when the default is empty
  std::string_view doc;      // one line, for the example file
  FieldRef (*field)(Config&);
  // Why a value read from the file is invalid, or empty when it is fine.
  std::string (*check)(const Config&) = nullptr;
};

// One key of an entry under hosts: (hosts.NAME.KEY).
struct HostKey {
  std::string_view name;
  std::string_view sample;
  std::string_view doc;
  FieldRef (*field)(HostConfig&);
};

// In the order the views and the example show them.
const std::vector<ConfigKey>& config_keys();
const std::vector<HostKey>& host_keys();

// The top-level sections that hold named entries rather than keys of the table.
inline constexpr std::string_view k_hosts_section = "hosts";
inline constexpr std::string_view k_plugins_section = "plugins";

// "pod" of "pod.gpu_types"; empty for a top-level key.
std::string_view section_of(std::string_view path);
// "gpu_types" of "pod.gpu_types".
std::string_view name_of(std::string_view path);

}  // namespace autopod::core
