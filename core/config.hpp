#pragma once
// autopod's settings, resolved in one place: flag > environment > config.yaml > default.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/home.hpp"
#include "core/result.hpp"

namespace autopod::core {

// An existing machine reachable by SSH, for the `ssh` provider (config `hosts:`).
struct HostConfig {
  std::string name;
  std::string host;
  int port = 22;
  std::string user = "root";
  std::string key;  // private key path; empty: autopod's own key
  int comfy_port = 8188;
  std::string models_root = "/workspace/ComfyUI/models";
};

// What `autopod connect` creates unless flags say otherwise (config `pod:`).
struct PodDefaults {
  std::string name = "autopod";
  std::string image = "runpod/comfyui:latest";
  std::vector<std::string> gpu_types = {"NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000",
                                        "NVIDIA L40S"};
  int gpu_count = 1;
  std::string cloud = "secure";
  int container_disk_gb = 50;
  std::string volume;  // network volume id or name; empty: none
  std::string mount_path = "/workspace";
  std::string models_root;  // where ComfyUI's models are; empty: <mount_path>/ComfyUI/models
  std::vector<std::string> ports = {"22/tcp", "8188/http"};
  std::map<std::string, std::string> env;
  std::vector<std::string> data_centers;
};

// What `autopod maintain` does (config `maintain:`); durations in minutes, 0 turns a check off.
struct MaintainConfig {
  int idle_minutes = 0;                      // a pod idle this long gets idle_action; 0: off
  std::map<std::string, std::string> pod_idle_minutes;  // per pod name, wins over idle_minutes
  std::string idle_action = "auto";          // auto (down with a volume, else stop), down, stop, notify
  int grace_minutes = 15;                    // a pod younger than this is never idle
  int comfy_down_minutes = 10;               // ComfyUI down this long runs restart_command
  std::string restart_command;               // run on the pod over ssh; empty: off
  double daily_budget = 0;                   // USD per local day, all pods; 0: off
  std::string budget_action = "auto";        // auto, down or stop
};

struct Config {
  Home home;  // AUTOPOD_HOME: every path under it
  std::string provider = "runpod";
  std::string log_level = "warn";
  std::string runpod_api_key;  // secret: never printed unmasked, never logged
  std::string runpod_api_url = "https://api.runpod.io";
  std::string hf_token;       // secret (hf.token / HF_TOKEN): sent to the Hugging Face API only
  std::string civitai_token;  // secret (civitai.token / CIVITAI_API_TOKEN): to Civitai's API only
  std::filesystem::path ssh_key;  // default home.default_ssh_key()
  bool ssh_key_is_default = true;
  PodDefaults pod;
  MaintainConfig maintain;
  std::map<std::string, HostConfig> hosts;
  std::vector<std::filesystem::path> plugin_dirs;  // home/plugins first
  // Each plugin's own section (config `plugins: {NAME: {...}}`), handed to it when it starts.
  std::map<std::string, nlohmann::json> plugins;
  // Where each setting came from ("default", "config.yaml:3", "env RUNPOD_API_KEY", "flag").
  std::map<std::string, std::string> sources;
  // Problems worth telling the user that do not stop anything (file permissions).
  std::vector<std::string> warnings;
};

// Command-line values, which win over everything else.
struct ConfigOverrides {
  std::optional<std::string> home;
  std::optional<std::string> provider;
  std::optional<std::string> api_url;
  std::optional<std::string> log_level;
  std::vector<std::string> plugin_dirs;
};

// Loads home/config.yaml (absent is fine) and applies environment and overrides.
// A malformed file is invalid_argument naming file:line:column and the key.
Result<Config> load_config(const ConfigOverrides& overrides);

// The effective configuration as YAML with the origin of each value; secrets masked.
std::string render_config(const Config& config);
// The same as JSON (the keys of render_config, plus "sources"); secrets masked.
nlohmann::json config_json(const Config& config);

// A commented example config.yaml.
std::string example_config();

// "****abcd" style: enough to recognise a key, never enough to use it.
std::string mask_secret(const std::string& secret);

}  // namespace autopod::core
