#include "providers/runpod/runpod_provider.hpp"

#include <algorithm>
#include <cctype>
#include <random>

#include "core/log.hpp"
#include "core/text.hpp"
#include "providers/runpod/runpod_api.hpp"

namespace autopod::providers::runpod {

using core::ErrorCode;
using core::fail;
using core::HttpResponse;
using nlohmann::json;

namespace {

bool ambiguous(const core::Error& e) {
  // The request may or may not have been carried out.
  return e.code == ErrorCode::network || e.code == ErrorCode::timeout ||
         (e.code == ErrorCode::remote && e.http_status >= 500);
}

class RunpodProvider final : public Provider {
 public:
  RunpodProvider(RunpodOptions options, std::unique_ptr<core::HttpTransport> transport,
                 core::Clock& clock, std::function<void(const std::string&)> progress)
      : m_options(std::move(options)),
        m_transport(std::move(transport)),
        m_clock(clock),
        m_progress(std::move(progress)),
        m_log(core::logger("runpod")),
        m_rng(std::random_device{}()) {}

  std::string name() const override { return "runpod"; }

  Result<std::vector<Pod>> list_pods() override {
    TRY_ASSIGN(auto body, call("GET", "/v2/pods"));
    return parse("GET /v2/pods", [&] {
      std::vector<Pod> pods;
      for (const auto& p : body.at("pods")) pods.push_back(pod_from_v2(p));
      return pods;
    });
  }

  Result<Pod> get_pod(const std::string& id) override {
    TRY(check_id(id));
    TRY_ASSIGN(auto body, call("GET", "/v2/pods/" + id));
    return parse("GET /v2/pods/" + id, [&] { return pod_from_v2(body); });
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
    std::optional<core::Error> rule_violation;
    for (const auto& [gpu, dcs] : candidates) {
      std::string where = gpu + (dcs.empty() ? "" : " in " + dcs.front());
      auto created = create_one(spec, gpu, dcs);
      if (created) return created;
      const auto& e = created.error();
      if (e.code == ErrorCode::no_capacity) {
        no_capacity.push_back(where);
        tell("no capacity for " + where + (&gpu == &candidates.back().first ? "" : ", trying the next"));
        continue;
      }
      if (e.http_status == 400 || e.http_status == 403) {
        // Per RunPod: a 400 may be capacity worded differently, a 403 a pool we may not use.
        rule_violation = e;
        tell("runpod refused " + where + ": " + e.message);
        continue;
      }
      return created;
    }
    if (rule_violation && no_capacity.empty()) return fail(*rule_violation);
    std::string tried;
    for (const auto& t : no_capacity) tried += (tried.empty() ? "" : ", ") + t;
    return fail(ErrorCode::no_capacity, "runpod has no capacity right now for " + tried,
                "add more gpu types (--gpu, tried in order), allow other data centers, "
                "use --cloud community (without a volume), or try again later");
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
    return pod;
  }

  Result<Pod> stop_pod(const std::string& id) override {
    return action(id, "stop", {PodStatus::exited});
  }

  Status terminate_pod(const std::string& id) override {
    TRY(check_id(id));
    int attempts = 0;
    auto r = with_retry<HttpResponse>([&] {
      ++attempts;
      return send_once("DELETE", "/v2/pods/" + id, {}, false);
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
    auto body = create_volume_body(spec);
    for (int attempt = 1;; ++attempt) {
      auto r = send_once("POST", "/v2/network-volumes", body.dump(), true);
      if (r) return parse("POST /v2/network-volumes", [&] {
        return volume_from_v2(json::parse(r->body));
      });
      if (ambiguous(r.error())) {
        TRY_ASSIGN(auto volumes, list_volumes());
        for (const auto& v : volumes)
          if (v.name == spec.name) return v;
      }
      if (!r.error().retryable() || attempt >= m_options.retry.max_attempts) return fail(r.error());
      backoff(attempt, r.error());
    }
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

  Result<HttpResponse> send_once(const std::string& method, const std::string& path,
                                 const std::string& body, bool fresh) {
    if (m_options.api_key.empty())
      return fail(ErrorCode::auth, "no runpod api key",
                  "export RUNPOD_API_KEY=... (console: Settings > API Keys) "
                  "or set runpod.api_key in config.yaml");
    core::HttpRequest req;
    req.method = method;
    req.url = m_options.api_url + path;
    req.headers = {{"Authorization", "Bearer " + m_options.api_key},
                   {"Accept", "application/json"}};
    if (!body.empty()) {
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = body;
    }
    req.fresh_connection = fresh;
    auto r = m_transport->send(req);
    if (!r) {
      auto e = std::move(r).error();
      e.message = "runpod: " + e.message;
      e.hint = "check your network, or RUNPOD_API_URL (now " + core::redact_url(req.url) + ")";
      return fail(e);
    }
    if (r->status >= 200 && r->status < 300) return r;
    return fail(error_from_response(*r, method + " " + path.substr(0, path.find('?'))));
  }

  void backoff(int attempt, const core::Error& e) {
    auto delay = core::backoff_delay(m_options.retry, attempt, e, m_rng);
    m_log->warn("retry {}/{} in {} ms: {}", attempt + 1, m_options.retry.max_attempts,
                delay.count(), e.message);
    m_clock.sleep_for(delay);
  }

  template <typename T>
  Result<T> with_retry(const std::function<Result<T>()>& op) {
    return core::with_retry<T>(m_options.retry, m_clock, op,
                               [&](int attempt, const core::Error& e, std::chrono::milliseconds d) {
                                 m_log->warn("retry {}/{} in {} ms: {}", attempt,
                                             m_options.retry.max_attempts, d.count(), e.message);
                               });
  }

  // An idempotent request, retried; its parsed JSON body (null for an empty one).
  Result<json> call(const std::string& method, const std::string& path,
                    const std::string& body = {}) {
    TRY_ASSIGN(auto response, with_retry<HttpResponse>([&] {
                 return send_once(method, path, body, false);
               }));
    if (response.body.empty()) return json(nullptr);
    return parse(method + " " + path.substr(0, path.find('?')),
                 [&] { return json::parse(response.body); });
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
    if (r->is_object()) return parse("POST " + path, [&] { return pod_from_v2(*r); });
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
        for (const auto& g : catalog) valid += "\n  " + g.id;
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

  // One candidate: retries what is safe to retry; after an ambiguous failure, looks the pod up
  // by name first so a lost answer never rents a second pod.
  Result<Pod> create_one(const PodSpec& spec, const std::string& gpu,
                         const std::vector<std::string>& dcs) {
    auto body = create_pod_body(spec, gpu, dcs).dump();
    for (int attempt = 1;; ++attempt) {
      auto r = send_once("POST", "/v2/pods", body, true);
      if (r) return parse("POST /v2/pods", [&] { return pod_from_v2(json::parse(r->body)); });
      auto e = r.error();
      if (ambiguous(e)) {
        m_log->warn("create of {} may have happened ({}); looking it up by name", spec.name,
                    e.message);
        TRY_ASSIGN(auto found, find_by_name(spec.name));
        if (found) {
          m_log->info("pod {} exists after all: {}", spec.name, found->id);
          return *found;
        }
      }
      if (!e.retryable() || attempt >= m_options.retry.max_attempts) return fail(e);
      if (e.retry_after_secs * 1000L > m_options.retry.max_retry_after.count()) return fail(e);
      backoff(attempt, e);
    }
  }

  RunpodOptions m_options;
  std::unique_ptr<core::HttpTransport> m_transport;
  core::Clock& m_clock;
  std::function<void(const std::string&)> m_progress;
  std::shared_ptr<spdlog::logger> m_log;
  std::mt19937 m_rng;
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
