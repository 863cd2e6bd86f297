// See model_sync.hpp.

#include "agent/model_sync.hpp"

#include <chrono>
#include <memory>

#include "agent/maintain/maintain.hpp"
#include "agent/pod_ssh.hpp"
#include "providers/pod_ops.hpp"

namespace autopod::agent {

using core::ErrorCode;

core::Result<models::SyncTarget> pod_models_target(Context& ctx,
                                                   const std::string& id,
                                                   const std::string& root) {
  TRY_ASSIGN(auto cfg, ctx.config());
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto pod, providers::find_pod(*provider, id));
  if (!pod.ssh)
    return core::fail(
        ErrorCode::not_found, "pod " + pod.name + " has no direct ssh endpoint yet",
        "it needs 22/tcp exposed and to be running: autopod connect --name " + pod.name);
  TRY(ctx.ensure_key(pod));
  std::string r = !root.empty() ? root : pod.models_root;
  if (r.empty())
    return core::fail(ErrorCode::invalid_argument, "pod " + pod.name + " names no models root",
                      "pass --models-root");
  // Models work on the pod (a sync, or following one) keeps `autopod maintain` from taking it
  // for idle: every call records the pod's activity, at most once a minute.
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  models::PodExec exec = [inner = pod_exec(*cfg, pod), home = cfg->home, id = pod.id, last](
                             const std::string& command, const std::string& input) {
    auto now = std::chrono::steady_clock::now();
    if (*last == std::chrono::steady_clock::time_point{} || now - *last >= std::chrono::minutes(1)) {
      *last = now;
      (void)maintain::record_activity(home, id, maintain::now());
    }
    return inner(command, input);
  };
  return models::SyncTarget{pod.name, std::move(exec), r};
}

std::vector<models::ModelNeed> workflow_needs(const comfy::WorkflowSource& source) {
  std::vector<models::ModelNeed> out;
  for (auto& r : comfy::model_references(source.workflow, source.format))
    out.push_back({r.folder, r.name, r.url, r.sha256, source.where + ": " + r.where});
  return out;
}

}  // namespace autopod::agent
