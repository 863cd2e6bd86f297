#include "providers/runpod/runpod_provider.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>

#include "core/log.hpp"
#include "core/text.hpp"
#include "providers/runpod/runpod_api.hpp"
#include "providers/runpod/runpod_client.hpp"

namespace autopod::providers::runpod {

using core::ErrorCode;
using core::fail;
using core::HttpResponse;
using nlohmann::json;

namespace {

constexpr int k_comfy_port = 8188;  // runpod/comfyui and RunPod's ComfyUI templates

class RunpodProvider final : public Provider {
 public:
  RunpodProvider(RunpodOptions options, std::unique_ptr<core::HttpTransport> transport,
                 core::Clock& clock, std::function<void(const std::string&)> progress)
      : m_client(std::move(options), std::move(transport), clock),
        m_progress(std::move(progress)),
        m_log(core::logger("runpod")) {}

  std::string name() const override { return "runpod"; }
  Capabilities capabilities() const override { return {}; }
  void set_deadline(core::Clock::time_point deadline) override { m_client.set_deadline(deadline); }

  Result<std::vector<Pod>> list_pods() override {
    TRY_ASSIGN(auto body, call("GET", "/v2/pods"));
    return parse("GET /v2/pods", [&] {
      std::vector<Pod> pods;
      for (const auto& p : body.at("pods")) pods.push_back(carry(pod_from_v2(p)));
      return pods;
    });
  }

  Result<Pod> get_pod(const std::string& id) override {
    TRY(check_id(id));
    TRY_ASSIGN(auto body, call("GET", "/v2/pods/" + id));
    return parse("GET /v2/pods/" + id, [&] { return carry(pod_from_v2(body)); });
  }

  Result<Pod> create_pod(const PodSpec& spec) override {
    if (spec.name.empty()) return fail(ErrorCode::invalid_argument, "a pod needs a name");
    if (spec.image.empty())
      return fail(ErrorCode::invalid_argument, "a pod needs an image", "pass --image or set pod.image");
    if (spec.gpu_types.empty())
      return fail(ErrorCode::invalid_argument, "no gpu type given", "pass --gpu TYPE (see autopod gpus)");
    TRY_ASSIGN(auto gpu_ids, resolve_gpu_types(spec.gpu_types));

    std::vector<std::pair<std::string, std::vector<std::string>>> candidates;
    for (const auto& gpu : gpu_ids) {
      if (spec.data_centers.empty()) candidates.push_back({gpu, {}});
      for (const auto& dc : spec.data_centers) candidates.push_back({gpu, {dc}});
    }
    std::vector<std::string> no_capacity;
    std::string runpod_said;
    std::optional<core::Error> rule_violation;
    for (const auto& [gpu, dcs] : candidates) {
      std::string where = gpu + (dcs.empty() ? "" : " in " + dcs.front());
      auto created = create_one(spec, gpu, dcs);
      if (created) return created;
      auto e = created.error();
      if (e.code == ErrorCode::no_capacity) {
        no_capacity.push_back(where);
        runpod_said = detail_of(e);
        tell("no capacity for " + where + (&gpu == &candidates.back().first ? "" : ", trying the next"));
        continue;
      }
      if (e.http_status == 400 || e.http_status == 403) {
        // Per RunPod: a 400 may be capacity worded differently, a 403 a pool we may not use.
        rule_violation = e;
        tell("runpod refused " + where + ": " + e.message);
        continue;
      }
      if (e.code == ErrorCode::payment) e.hint += "; nothing was created";
      return fail(e);
    }
    if (rule_violation && no_capacity.empty()) return fail(*rule_violation);
    return fail(no_capacity_error(spec, no_capacity, runpod_said));
  }

  Result<Pod> start_pod(const std::string& id) override {
    auto pod = action(id, "start", {PodStatus::running, PodStatus::starting,
                                    PodStatus::provisioning});
    if (!pod && pod.error().code == ErrorCode::no_capacity) {
      auto e = pod.error();
      e.message = "pod " + id + " cannot start: its host has no free gpu (" + e.message + ")";
      e.hint = "a stopped pod is tied to its host. With a network volume: autopod down " + id +
               ", then autopod connect --name NAME recreates it in the volume's data center";
      return fail(e);
    }
    if (!pod && pod.error().code == ErrorCode::payment) {
      auto e = pod.error();
      e.message = "pod " + id + " exists but stays stopped: " + e.message;
      e.hint = "add funds in the runpod console, then: autopod start " + id +
               " (the pod, its disk and any volume are kept)";
      return fail(e);
    }
    return pod;
  }

  Result<Pod> stop_pod(const std::string& id) override {
    return action(id, "stop", {PodStatus::exited});
  }

  Status terminate_pod(const std::string& id) override {
    TRY(check_id(id));
    int attempts = 0;
    auto r = m_client.retried([&] {
      ++attempts;
      return m_client.send_once("DELETE", "/v2/pods/" + id, {}, false);
    });
    // A retried DELETE whose first answer was lost finds the pod already gone.
    if (!r && r.error().code == ErrorCode::not_found && attempts > 1) return {};
    if (!r) return fail(r.error());
    return {};
  }

  Result<std::vector<Volume>> list_volumes() override {
    TRY_ASSIGN(auto body, call("GET", "/v2/network-volumes"));
    return parse("GET /v2/network-volumes", [&] {
      std::vector<Volume> volumes;
      for (const auto& v : body.at("networkVolumes")) volumes.push_back(volume_from_v2(v));
      return volumes;
    });
  }

  Result<Volume> get_volume(const std::string& id) override {
    TRY(check_id(id));
    TRY_ASSIGN(auto body, call("GET", "/v2/network-volumes/" + id));
    return parse("GET /v2/network-volumes/" + id, [&] { return volume_from_v2(body); });
  }

  Result<Volume> create_volume(const VolumeSpec& spec) override {
    if (spec.name.empty() || spec.data_center.empty())
      return fail(ErrorCode::invalid_argument, "a volume needs a name and a data center",
                  "autopod volume create NAME --size GB --dc DATA_CENTER");
    if (spec.size_gb < 10 || spec.size_gb > 4096)
      return fail(ErrorCode::invalid_argument,
                  "volume size " + std::to_string(spec.size_gb) + " GB is outside 10-4096",
                  "pass --size between 10 and 4096");
    return m_client.create<Volume>(
        "/v2/network-volumes", create_volume_body(spec).dump(),
        [&]() -> Result<std::optional<Volume>> {
          TRY_ASSIGN(auto volumes, list_volumes());
          for (const auto& v : volumes)
            if (v.name == spec.name) return std::optional<Volume>(v);
          return std::optional<Volume>();
        },
        [&](const HttpResponse& r) {
          return parse("POST /v2/network-volumes", [&] { return volume_from_v2(json::parse(r.body)); });
        });
  }

  Status delete_volume(const std::string& id) override {
    TRY(check_id(id));
    TRY(call("DELETE", "/v2/network-volumes/" + id));
    return {};
  }

  Result<std::vector<GpuType>> list_gpu_types() override {
    TRY_ASSIGN(auto body, call("GET", "/v2/catalog/gpus?include=AVAILABILITY&product=POD"));
    return parse("GET /v2/catalog/gpus", [&] {
      std::vector<GpuType> gpus;
      for (const auto& g : body.at("gpus")) gpus.push_back(gpu_from_v2(g));
      return gpus;
    });
  }

  Result<std::vector<DataCenter>> list_data_centers() override {
    TRY_ASSIGN(auto body, call("GET", "/v2/catalog/datacenters"));
    return parse("GET /v2/catalog/datacenters", [&] {
      std::vector<DataCenter> dcs;
      for (const auto& d : body.at("dataCenters")) dcs.push_back(data_center_from_v2(d));
      return dcs;
    });
  }

 private:
  void tell(const std::string& line) {
    m_log->info("{}", line);
    if (m_progress) m_progress(line);
  }

  Status check_id(const std::string& id) {
    bool ok = !id.empty() && std::all_of(id.begin(), id.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '-' || c == '_';
    });
    if (!ok) return fail(ErrorCode::invalid_argument, "'" + id + "' is not a runpod id");
    return {};
  }

  template <typename F>
  auto parse(const std::string& what, F&& f) -> Result<decltype(f())> {
    try {
      return f();
    } catch (const json::exception& e) {
      return fail(ErrorCode::protocol,
                  "runpod sent an answer to " + what + " that autopod cannot read: " + e.what(),
                  "try again; if it persists, check RUNPOD_API_URL or report it");
    }
  }

  Result<json> call(const std::string& method, const std::string& path,
                    const std::string& body = {}) {
    return m_client.call(method, path, body);
  }

  // What the next layer needs travels with the pod: the key to log in with, ComfyUI's port
  // and where its models are.
  Pod carry(Pod p) const {
    const auto& o = m_client.options();
    if (p.ssh) p.ssh->key = o.ssh_key;
    p.comfy_port = k_comfy_port;
    p.models_root = !o.models_root.empty()
                        ? o.models_root
                        : (p.mount_path.empty() ? o.mount_path : p.mount_path) + "/ComfyUI/models";
    return p;
  }

  // The text RunPod itself gave for an error ("There are no longer any instances ...").
  static std::string detail_of(const core::Error& e) {
    auto at = e.message.find(": ");
    std::string said = at == std::string::npos ? e.message : e.message.substr(at + 2);
    return said.substr(0, said.find('\n'));
  }

  static core::Error no_capacity_error(const PodSpec& spec, const std::vector<std::string>& tried,
                                       const std::string& said) {
    auto e = core::make_error(ErrorCode::no_capacity,
                              fmt::format("runpod has no capacity right now for {}{}",
                                          fmt::join(tried, ", "),
                                          said.empty() ? "" : " (runpod: \"" + said + "\")"));
    if (!spec.volume_id.empty())
      e.hint = fmt::format(
          "the pod must run in {} with volume {}: try other gpu types (--gpu, tried in order; "
          "autopod gpus shows stock), wait and try again, or move the models to a volume in "
          "another data center",
          fmt::join(spec.data_centers, ", "), spec.volume_id);
    else
      e.hint = "add more gpu types (--gpu, tried in order), allow other data centers (--dc), "
               "use --cloud community, or try again later";
    return e;
  }

  Result<Pod> action(const std::string& id, const std::string& verb,
                     std::vector<PodStatus> done) {
    TRY(check_id(id));
    std::string path = "/v2/pods/" + id + "/action";
    auto r = call("POST", path, json{{"action", verb}}.dump());
    if (!r && r.error().code == ErrorCode::conflict) {
      // Already where we wanted it (or a retry after a lost answer): not an error.
      auto pod = get_pod(id);
      if (pod && std::find(done.begin(), done.end(), pod->status) != done.end()) return pod;
      auto e = r.error();
      if (pod) e.message = "pod " + id + " is " + to_string(pod->status) + "; cannot " + verb;
      return fail(e);
    }
    if (!r) return fail(r.error());
    if (r->is_object()) return parse("POST " + path, [&] { return carry(pod_from_v2(*r)); });
    return get_pod(id);  // 204: no body
  }

  Result<std::vector<std::string>> resolve_gpu_types(const std::vector<std::string>& wanted) {
    TRY_ASSIGN(auto catalog, list_gpu_types());
    std::vector<std::string> ids;
    for (const auto& w : wanted) {
      auto it = std::find_if(catalog.begin(), catalog.end(), [&](const GpuType& g) {
        return core::lowercase(g.id) == core::lowercase(w) || core::lowercase(g.name) == core::lowercase(w);
      });
      if (it == catalog.end()) {
        std::string valid;
        for (const auto& g : catalog) valid += "\n  " + g.id;  // one per line, not joined
        return fail(ErrorCode::invalid_argument, "unknown gpu type '" + w + "'",
                    "valid gpu types (autopod gpus shows prices):" + valid);
      }
      ids.push_back(it->id);
    }
    return ids;
  }

  Result<std::optional<Pod>> find_by_name(const std::string& name) {
    TRY_ASSIGN(auto pods, list_pods());
    for (const auto& p : pods)
      if (p.name == name) return std::optional<Pod>(p);
    return std::optional<Pod>();
  }

  // One candidate, created exactly once (see RunpodClient::create).
  Result<Pod> create_one(const PodSpec& spec, const std::string& gpu,
                         const std::vector<std::string>& dcs) {
    return m_client.create<Pod>(
        "/v2/pods", create_pod_body(spec, gpu, dcs).dump(),
        [&] { return find_by_name(spec.name); },
        [&](const HttpResponse& r) {
          return parse("POST /v2/pods", [&] { return carry(pod_from_v2(json::parse(r.body))); });
        });
  }

  RunpodClient m_client;
  std::function<void(const std::string&)> m_progress;
  std::shared_ptr<spdlog::logger> m_log;
};
}  // namespace

std::unique_ptr<Provider> make_runpod_provider(RunpodOptions options,
                                               std::unique_ptr<core::HttpTransport> transport,
                                               core::Clock& clock,
                                               std::function<void(const std::string&)> progress) {
  return std::make_unique<RunpodProvider>(std::move(options), std::move(transport), clock,
                                          std::move(progress));
}

}  // namespace autopod::providers::runpod
