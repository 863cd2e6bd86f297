// Loads provider plugins (plugin_abi.h) and adapts them to the Provider interface.

#include <dlfcn.h>

#include <filesystem>

#include "core/log.hpp"
#include "providers/plugin_abi.h"
#include "providers/provider.hpp"

namespace autopod::providers {
namespace {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

ErrorCode code_from_string(const std::string& s) {
  for (int i = 0; i <= static_cast<int>(ErrorCode::internal); ++i)
    if (s == core::to_string(static_cast<ErrorCode>(i))) return static_cast<ErrorCode>(i);
  return ErrorCode::remote;
}

class PluginProvider final : public Provider {
 public:
  PluginProvider(const autopod_provider_plugin_v1* plugin, void* instance, std::string path,
                 std::filesystem::path default_key)
      : m_plugin(plugin),
        m_instance(instance),
        m_path(std::move(path)),
        m_default_key(std::move(default_key)) {
    // Optional in the protocol: a plugin that does not answer it can do everything.
    if (auto caps = ask<Capabilities>({{"op", "capabilities"}})) m_capabilities = *caps;
  }
  ~PluginProvider() override {
    try {
      m_plugin->destroy(m_instance);
    } catch (...) {
      core::logger("plugins")->error("plugin {} threw while being destroyed", m_path);
    }
  }
  PluginProvider(const PluginProvider&) = delete;
  PluginProvider& operator=(const PluginProvider&) = delete;

  std::string name() const override { return m_plugin->name; }
  Capabilities capabilities() const override { return m_capabilities; }
  // A call into a plugin cannot be interrupted from here.
  void set_deadline(core::Clock::time_point) override {}

  Result<std::vector<Pod>> list_pods() override { return ask<std::vector<Pod>>({{"op", "list_pods"}}); }
  Result<Pod> get_pod(const std::string& id) override { return ask<Pod>({{"op", "get_pod"}, {"id", id}}); }
  Result<Pod> create_pod(const PodSpec& spec) override {
    return ask<Pod>({{"op", "create_pod"}, {"spec", spec}});
  }
  Result<Pod> start_pod(const std::string& id) override { return ask<Pod>({{"op", "start_pod"}, {"id", id}}); }
  Result<Pod> stop_pod(const std::string& id) override { return ask<Pod>({{"op", "stop_pod"}, {"id", id}}); }
  Status terminate_pod(const std::string& id) override {
    TRY(ask<json>({{"op", "terminate_pod"}, {"id", id}}));
    return {};
  }
  Result<std::vector<Volume>> list_volumes() override {
    return ask<std::vector<Volume>>({{"op", "list_volumes"}});
  }
  Result<Volume> get_volume(const std::string& id) override {
    return ask<Volume>({{"op", "get_volume"}, {"id", id}});
  }
  Result<Volume> create_volume(const VolumeSpec& spec) override {
    return ask<Volume>({{"op", "create_volume"}, {"spec", spec}});
  }
  Status delete_volume(const std::string& id) override {
    TRY(ask<json>({{"op", "delete_volume"}, {"id", id}}));
    return {};
  }
  Result<std::vector<GpuType>> list_gpu_types() override {
    return ask<std::vector<GpuType>>({{"op", "list_gpu_types"}});
  }
  Result<std::vector<DataCenter>> list_data_centers() override {
    return ask<std::vector<DataCenter>>({{"op", "list_data_centers"}});
  }

 private:
  template <typename T>
  Result<T> ask(const json& request) {
    std::string op = request.at("op");
    std::string where = "plugin " + std::string(m_plugin->name) + " (" + m_path + ") " + op;
    char* raw = nullptr;
    try {
      raw = m_plugin->call(m_instance, request.dump().c_str());
    } catch (const std::exception& e) {
      return fail(ErrorCode::internal, where + " threw: " + e.what(),
                  "report it to the plugin's author; plugins must return errors, not throw");
    } catch (...) {
      return fail(ErrorCode::internal, where + " threw an unknown exception",
                  "report it to the plugin's author");
    }
    if (raw == nullptr) return fail(ErrorCode::protocol, where + " returned nothing");
    std::string text(raw);
    m_plugin->free_string(raw);
    try {
      auto answer = json::parse(text);
      if (!answer.value("ok", false)) {
        const auto& e = answer.at("error");
        return fail(code_from_string(e.value("code", "remote")),
                    e.value("message", where + " failed"), e.value("hint", ""));
      }
      if constexpr (std::is_same_v<T, json>) {
        return answer.value("result", json(nullptr));
      } else {
        T value = answer.at("result").get<T>();
        if constexpr (std::is_same_v<T, Pod>) complete(value);
        if constexpr (std::is_same_v<T, std::vector<Pod>>)
          for (auto& p : value) complete(p);
        return value;
      }
    } catch (const json::exception& e) {
      return fail(ErrorCode::protocol, where + " answered malformed JSON: " + e.what(),
                  "report it to the plugin's author");
    }
  }

  // Fields plugins of the first protocol do not send: autopod's key, the usual models root.
  void complete(Pod& p) const {
    p.provider = m_plugin->name;
    if (p.ssh && p.ssh->key.empty()) p.ssh->key = m_default_key;
    if (p.models_root.empty())
      p.models_root = (p.mount_path.empty() ? "/workspace" : p.mount_path) + "/ComfyUI/models";
  }

  const autopod_provider_plugin_v1* m_plugin;
  void* m_instance;
  std::string m_path;
  std::filesystem::path m_default_key;
  Capabilities m_capabilities;
};

}  // namespace

Result<std::string> load_plugin(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = ::dlerror();
    return fail(ErrorCode::invalid_argument,
                "cannot load plugin " + path + ": " + (why ? why : "unknown reason"),
                "rebuild it for this machine, or remove it from the plugin directory");
  }
  // Plugins stay loaded until exit: code of theirs may still run in destructors.
  auto entry =
      reinterpret_cast<autopod_provider_plugin_fn>(::dlsym(handle, AUTOPOD_PLUGIN_ENTRY));
  if (!entry)
    return fail(ErrorCode::invalid_argument,
                "plugin " + path + " has no " + AUTOPOD_PLUGIN_ENTRY + " symbol",
                "a provider plugin must export extern \"C\" " AUTOPOD_PLUGIN_ENTRY
                " (see providers/plugin_abi.h)");
  const autopod_provider_plugin_v1* plugin = nullptr;
  try {
    plugin = entry();
  } catch (...) {
    return fail(ErrorCode::invalid_argument, "plugin " + path + " threw from its entry point",
                "report it to the plugin's author");
  }
  if (!plugin) return fail(ErrorCode::invalid_argument, "plugin " + path + " described nothing");
  if (plugin->abi_version != AUTOPOD_PLUGIN_ABI_VERSION)
    return fail(ErrorCode::invalid_argument,
                "plugin " + path + " was built for plugin ABI " +
                    std::to_string(plugin->abi_version) + "; this autopod speaks " +
                    std::to_string(AUTOPOD_PLUGIN_ABI_VERSION),
                "rebuild the plugin against this autopod's providers/plugin_abi.h");
  if (!plugin->name || !*plugin->name || !plugin->create || !plugin->call || !plugin->destroy ||
      !plugin->free_string)
    return fail(ErrorCode::invalid_argument,
                "plugin " + path + " leaves required fields of its description empty");
  std::string name = plugin->name;
  register_provider(name, [plugin, path](const ProviderContext& context)
                              -> Result<std::unique_ptr<Provider>> {
    // The plugin's own section of config.yaml (plugins: {NAME: {...}}), plus where autopod's
    // home is unless the section says otherwise.
    json config = json::object();
    if (context.config) {
      if (auto it = context.config->plugins.find(plugin->name); it != context.config->plugins.end())
        config = it->second;
      if (!config.contains("home")) config["home"] = context.config->home.root().string();
    }
    char* error = nullptr;
    void* instance = nullptr;
    try {
      instance = plugin->create(config.dump().c_str(), &error);
    } catch (...) {
      return fail(ErrorCode::internal, "plugin " + path + " threw while starting",
                  "report it to the plugin's author");
    }
    if (!instance) {
      std::string why = error ? error : "no reason given";
      if (error) plugin->free_string(error);
      return fail(ErrorCode::remote, "plugin " + std::string(plugin->name) + " failed to start: " + why);
    }
    return std::unique_ptr<Provider>(std::make_unique<PluginProvider>(
        plugin, instance, path,
        context.config ? context.config->ssh_key : std::filesystem::path()));
  });
  core::logger("plugins")->info("loaded provider {} from {}", name, path);
  return name;
}

void load_plugins(const std::vector<std::string>& dirs, std::vector<core::Error>& problems) {
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) continue;
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
      if (entry.path().extension() == ".so") files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto r = load_plugin(f);
      if (!r) problems.push_back(r.error());
    }
  }
}

}  // namespace autopod::providers
