#pragma once
// autopod agent: a local HTTP task service for applications (the API is in the README and in
// agent/service/openapi.yaml). POST /v1/generations answers a task id at once; the task is followed
// over Server-Sent Events or webhooks, and survives restarts of the agent (AUTOPOD_HOME/tasks/).
//
//   service::Service svc(options, pods);
//   TRY(svc.start());            // token and secret made on first start, unfinished tasks resumed
//   ... svc.port() ...
//   svc.stop();                  // streams ended, state flushed; prompts keep running on the pod

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/backoff.hpp"
#include "core/home.hpp"
#include "core/result.hpp"
#include "models/sync.hpp"

namespace autopod::agent::service {

// How the service reaches the pods and their ComfyUI. The CLI's goes through the provider and
// ensures tunnels; tests give the ComfyUI fake's URL. Called from several threads at once.
class PodAccess {
 public:
  virtual ~PodAccess() = default;
  // The base URL of the pod's ComfyUI, its tunnel ensured; `pod` empty: the agent's default.
  virtual core::Result<std::string> comfy_url(const std::string& pod) = 0;
  // The pods as `autopod ls --json` lists them: {"pods": [...]}.
  virtual core::Result<nlohmann::json> pods() = 0;
  // The pod's models root and how to run the pod-side sync program there (the CLI's: the OpenSSH
  // client); `pod` empty: the agent's default. Unless overridden: unsupported.
  virtual core::Result<models::SyncTarget> models_target(const std::string& pod);
};

struct ServiceOptions {
  core::Home home;
  std::string address = "127.0.0.1";
  int port = 8787;                          // 0: any free port (see Service::port)
  std::size_t max_body_bytes = 32u << 20;   // larger bodies get 413
  int max_running_per_pod = 0;              // generations submitted at once per pod; 0: no limit
  std::chrono::milliseconds heartbeat{15000};  // SSE comment interval
  std::chrono::milliseconds prune_after{std::chrono::hours(24)};
  std::chrono::milliseconds prune_interval{std::chrono::minutes(1)};
  core::BackoffSchedule webhook_retry{std::chrono::seconds(1), std::chrono::minutes(5), core::Jitter::half};
  std::chrono::milliseconds webhook_give_up{std::chrono::hours(1)};
  std::chrono::milliseconds webhook_timeout{10000};
  std::map<std::string, std::string> step_names;  // node class type -> step name, over the defaults
  int io_threads = 2;
  std::chrono::milliseconds comfy_watchdog{3000};  // the runner's seam (tests: quicker recovery)
  std::optional<models::Endpoints> model_endpoints;  // model hubs and tokens; unset: from the environment (the CLI: environment, else config.yaml)
  std::chrono::milliseconds sync_poll{500};          // between two looks at a pod's sync job
};

class Service {
 public:
  Service(ServiceOptions options, PodAccess& pods);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Loads the tasks, makes the token and webhook secret on first start, listens, and resumes
  // unfinished tasks. io errors for AUTOPOD_HOME; network error naming the address in use.
  core::Status start();
  int port() const;
  // Stops accepting, ends every event stream with a `shutdown` event, stops following the runs
  // (their prompts keep running on the pod and are picked up by the next start) and writes every
  // task's state. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// The token applications send as `Authorization: Bearer ...` (AUTOPOD_HOME/agent.token) and the
// webhook signing secret (AUTOPOD_HOME/agent.webhook-secret), made on first use with mode 0600.
core::Result<std::string> agent_token(const core::Home& home);
core::Result<std::string> webhook_secret(const core::Home& home);

}  // namespace autopod::agent::service
