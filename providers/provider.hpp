#pragma once
// Clouds and machines that run pods: the Provider interface, its registry and plugins.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/http.hpp"
#include "core/result.hpp"
#include "core/ssh_endpoint.hpp"

namespace autopod::providers {

using core::Result;
using core::Status;

enum class PodStatus { provisioning, starting, running, exited, error, terminated, unknown };
std::string to_string(PodStatus status);
PodStatus parse_pod_status(const std::string& text);  // "RUNNING", "running", ...

// Where a direct SSH connection (one that can forward ports) reaches the pod, and the key.
using SshEndpoint = core::SshEndpoint;

struct Pod {
  std::string id;
  std::string name;
  std::string provider;
  PodStatus status = PodStatus::unknown;
  std::string image;
  std::string gpu_type;
  int gpu_count = 0;
  std::string cloud;        // "secure" / "community"
  std::string data_center;
  double cost_per_hr = 0;   // USD
  std::string volume_id;    // network volume, empty when none
  std::string mount_path;
  std::vector<std::string> ports;
  std::optional<SshEndpoint> ssh;  // absent until the public port 22 is mapped; with its key
  std::string created_at;
  int comfy_port = 8188;    // ComfyUI's port on the pod
  std::string models_root;  // where ComfyUI's models are on the pod
};

// What to create. gpu_types are tried in order until one has capacity.
struct PodSpec {
  std::string name;
  std::string image;
  std::vector<std::string> gpu_types;
  int gpu_count = 1;
  std::string cloud = "secure";
  int container_disk_gb = 50;
  std::string volume_id;
  std::string mount_path = "/workspace";
  std::vector<std::string> ports = {"22/tcp", "8188/http"};
  std::map<std::string, std::string> env;
  std::vector<std::string> data_centers;  // tried in order; empty: the scheduler chooses
  std::string public_key;                 // handed to the pod as PUBLIC_KEY
};

struct Volume {
  std::string id;
  std::string name;
  int size_gb = 0;
  std::string data_center;
  std::string type;  // STANDARD / HIGH_PERFORMANCE
};

struct VolumeSpec {
  std::string name;
  int size_gb = 0;
  std::string data_center;
  std::string type;  // empty: the provider's default
};

struct GpuType {
  std::string id;
  std::string name;
  int memory_gb = 0;
  double price_secure = 0;     // USD per hour and GPU
  double price_community = 0;
  std::string availability;    // NONE/LOW/MEDIUM/HIGH when known
};

struct DataCenter {
  std::string id;
  std::string name;
  std::string region;
};

// What a provider can do, so that callers ask instead of testing its name. What it cannot do
// also fails with ErrorCode::unsupported and a hint.
struct Capabilities {
  bool create = true;       // create_pod
  bool stop_start = true;   // stop_pod / start_pod change anything
  bool terminate = true;    // terminate_pod
  bool volumes = true;      // network volumes
  bool billing = true;      // Pod::cost_per_hr means something
  bool records = true;      // pods.json remembers its pods (for down, then connect --name)
  bool managed_key = true;  // autopod's own key is handed to the pods it creates (PUBLIC_KEY)
};

// A cloud or machine that runs pods. Never prints or exits: failures are returned.
// Operations a provider cannot do fail with ErrorCode::unsupported and a hint.
class Provider {
 public:
  virtual ~Provider() = default;
  // The name it is registered under ("runpod"); also Pod::provider of its pods.
  virtual std::string name() const = 0;
  // What it can do; constant for the provider's life.
  virtual Capabilities capabilities() const = 0;
  // Bounds every later call: requests are clipped to what remains and retries stop there
  // (ErrorCode::timeout). Providers that cannot be bounded ignore it.
  virtual void set_deadline(core::Clock::time_point deadline) = 0;
  // Every pod it has now, terminated ones left out; fresh, never cached.
  virtual Result<std::vector<Pod>> list_pods() = 0;
  // Fresh from the provider (the SSH port changes on every start): never cached. not_found
  // when there is no such pod.
  virtual Result<Pod> get_pod(const std::string& id) = 0;
  // Creates exactly one pod, even when answers are lost and the request is retried; gpu types
  // and data centers are tried in order. no_capacity when none has a machine now.
  virtual Result<Pod> create_pod(const PodSpec& spec) = 0;
  // Starts a stopped pod; a pod already running or starting is returned as it is.
  virtual Result<Pod> start_pod(const std::string& id) = 0;
  // Stops a pod, keeping it (and its disk) on its host; a stopped pod is returned as it is.
  virtual Result<Pod> stop_pod(const std::string& id) = 0;
  // Deletes the pod (never its network volume). A pod already gone after a retried request
  // whose first answer was lost is success; an unknown pod is not_found.
  virtual Status terminate_pod(const std::string& id) = 0;
  // Every network volume; empty for providers without volumes.
  virtual Result<std::vector<Volume>> list_volumes() = 0;
  // not_found when there is no such volume.
  virtual Result<Volume> get_volume(const std::string& id) = 0;
  // Creates exactly one volume, even when answers are lost and the request is retried.
  virtual Result<Volume> create_volume(const VolumeSpec& spec) = 0;
  // Deletes the volume and its data; conflict while a pod mounts it.
  virtual Status delete_volume(const std::string& id) = 0;
  // The GPU types it rents, with prices and stock when known.
  virtual Result<std::vector<GpuType>> list_gpu_types() = 0;
  // The data centers pods and volumes may be placed in.
  virtual Result<std::vector<DataCenter>> list_data_centers() = 0;
};

// What a provider factory may use. Outlives the providers made from it.
struct ProviderContext {
  const core::Config* config = nullptr;
  core::Clock* clock = nullptr;
  std::function<std::unique_ptr<core::HttpTransport>()> make_transport;
  // Progress for the user ("no capacity for A40 in EU-RO-1, trying L40S"); may be empty.
  std::function<void(const std::string&)> progress;
};

using ProviderFactory =
    std::function<Result<std::unique_ptr<Provider>>(const ProviderContext& context)>;

// Adds or replaces a provider by name.
void register_provider(const std::string& name, ProviderFactory factory);
// not_found listing the known names when `name` is not registered.
Result<std::unique_ptr<Provider>> make_provider(const std::string& name,
                                                const ProviderContext& context);
std::vector<std::string> provider_names();
// Registers "runpod" and "ssh".
void register_builtin_providers();

// Loads every lib*.so in `dirs` as a provider plugin (see plugin_abi.h) and registers it.
// A bad plugin never stops the others: its error is appended to `problems`.
void load_plugins(const std::vector<std::string>& dirs, std::vector<core::Error>& problems);
// Loads one plugin file and registers its provider; returns the provider's name.
Result<std::string> load_plugin(const std::string& path);

// The stable JSON shapes of --json output, pods.json and the plugin protocol.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Capabilities, create, stop_start, terminate,
                                                volumes, billing, records, managed_key)
void to_json(nlohmann::json& j, const Pod& p);
void to_json(nlohmann::json& j, const Volume& v);
void to_json(nlohmann::json& j, const GpuType& g);
void to_json(nlohmann::json& j, const DataCenter& d);
void to_json(nlohmann::json& j, const PodSpec& s);
void to_json(nlohmann::json& j, const VolumeSpec& s);
// Parse errors are turned into core::Error by the callers (they know the source). Fields a
// plugin may leave out (comfy_port, models_root, ssh.key) keep their defaults.
void from_json(const nlohmann::json& j, Pod& p);
void from_json(const nlohmann::json& j, Volume& v);
void from_json(const nlohmann::json& j, GpuType& g);
void from_json(const nlohmann::json& j, DataCenter& d);
void from_json(const nlohmann::json& j, PodSpec& s);
void from_json(const nlohmann::json& j, VolumeSpec& s);

}  // namespace autopod::providers
