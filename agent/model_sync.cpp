// See model_sync.hpp.

#include "agent/model_sync.hpp"

#include "agent/cli/commands.hpp"

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
  auto argv = ssh_argv(*cfg, pod);
  argv.insert(argv.begin() + 1, {"-o", "BatchMode=yes"});  // a command and stdin, no prompt
  models::PodExec exec = [argv](const std::string& command, const std::string& input) {
    auto full = argv;
    full.push_back(command);
    return core::run_capture(full, input);
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
