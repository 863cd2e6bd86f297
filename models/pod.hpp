#pragma once
// The pod side of a sync: models/pod/*.py, embedded at build time and sent on stdin to the pod's
// python3 (nothing is installed there), one JSON request per run. Downloads run on the pod,
// detached, from URLs resolved here; the pod re-resolves a signed URL that expires through the
// file's origin, with the tokens that came on stdin (kept in memory there, sent to the API host
// only, never in an argv or a file). Never prints or exits.

#include <chrono>
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

// One request of the pod-side program; its JSON answer. not_found naming what the pod lacks
// (python3), remote with the program's own message when it refuses (path escape, no space, ...).
core::Result<nlohmann::json> pod_request(const PodExec& exec, const nlohmann::json& request);

// The models root on the pod, as plan_sync needs it (records, files, free bytes).
core::Result<RootListing> pod_listing(const PodExec& exec, const std::string& root);

// How a pod job runs.
struct PodJobOptions {
  int connections = 8;  // per file
  int parallel = 3;     // files at once under the models root, across every job there
  int priority = 0;     // higher goes first when files wait for one of those slots
  int stall_secs = 30;  // no byte for this long: the connection is retried
  std::int64_t chunk_bytes = 16 << 20;  // ranges are fetched, recorded and resumed in these
  // Sent on stdin (never argv), kept in the job's memory only, given to origin hosts only.
  std::string hf_token;
  std::string civitai_token;
};

// Starts the plan's downloads on the pod as one detached job and returns its id; the pod checks
// the free space first (remote naming the numbers). Prune items are removed before it starts.
core::Result<std::string> pod_start(const PodExec& exec, const std::string& root,
                                    const SyncPlan& plan, const PodJobOptions& options);

// The job's state ({"job", "state", "tasks": [{name, folder, state, bytes, total, ...}]}).
// With `wait`, the pod answers as soon as the job is no longer running, or after `wait` with its
// progress then: one exec that sees the end at once, where a poll loop would pay a connection per
// look and see it a poll late. not_found when there is no such job.
core::Result<nlohmann::json> pod_status(const PodExec& exec, const std::string& root,
                                        const std::string& job,
                                        std::chrono::milliseconds wait = std::chrono::milliseconds(0));

// Asks a running job to pause or cancel (it stops within half a second; cancel removes its
// partial files, also when the job had already stopped); resume and retry start a job that is
// not running again from its partial files, with `options`' tokens. remote when the pod refuses.
core::Status pod_control(const PodExec& exec, const std::string& root, const std::string& job,
                         TaskControl control, const PodJobOptions& options = {});

}  // namespace autopod::models
