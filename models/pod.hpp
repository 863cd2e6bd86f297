#pragma once
// The pod side of a sync: models/pod/*.py, embedded at build time and sent on stdin to the pod's
// python3 (nothing is installed there), one JSON request per run. Downloads run on the pod,
// detached, from URLs resolved here: no token ever goes to the pod. Never prints or exits.

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/process.hpp"
#include "models/models.hpp"

namespace autopod::models {

// The pod-side program's text (the .py files, concatenated).
const std::string& pod_program();

// Runs `command` in a shell on the pod with `input` on stdin (the CLI: libssh2 exec; tests:
// `sh -c`, since the harness pod is this machine).
using PodExec = std::function<core::Result<core::ProcessOutput>(const std::string& command,
                                                                 const std::string& input)>;

// One request of the pod-side program; its JSON answer. not_found when the pod has no python3,
// remote with the program's own message when it refuses (path escape, no space, ...).
core::Result<nlohmann::json> pod_request(const PodExec& exec, const nlohmann::json& request);

// The models root on the pod, as plan_sync needs it (records, files, free bytes).
core::Result<RootListing> pod_listing(const PodExec& exec, const std::string& root);

// Starts the plan's downloads on the pod as one detached job and returns its id; the pod checks
// the free space first (io naming the numbers). Prune items are removed before it starts.
core::Result<std::string> pod_start(const PodExec& exec, const std::string& root,
                                    const SyncPlan& plan, int connections);

// The job's state ({"job", "state", "tasks": [{name, folder, state, bytes, total, ...}]}).
core::Result<nlohmann::json> pod_status(const PodExec& exec, const std::string& root,
                                        const std::string& job);

// Asks a running job to pause or cancel (it stops within half a second).
core::Status pod_control(const PodExec& exec, const std::string& root, const std::string& job,
                         TaskControl control);

}  // namespace autopod::models
