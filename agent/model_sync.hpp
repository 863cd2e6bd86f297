#pragma once
// What the CLI's `models` commands and the agent service's model-sync tasks share: the models
// root of a pod reached over ssh, and the models a workflow needs (comfy/ reads the workflow,
// models/ resolves what it names).

#include <string>
#include <vector>

#include "agent/context.hpp"
#include "comfy/run.hpp"
#include "models/sync.hpp"

namespace autopod::agent {

// The pod's models root (`root`, else the pod's own models_root) and a libssh2 exec on one
// session (agent/pod_ssh.hpp) to run the pod-side program there; records the pod's activity for
// `autopod maintain`. not_found when the pod has no direct ssh endpoint yet, invalid_argument
// when no models root is known.
core::Result<models::SyncTarget> pod_models_target(Context& ctx,
                                                   const std::string& pod,
                                                   const std::string& root);

// The model files `source` names (comfy::model_references), each `where` prefixed with the
// source's own name.
std::vector<models::ModelNeed> workflow_needs(const comfy::WorkflowSource& source);

}  // namespace autopod::agent
