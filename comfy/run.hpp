#pragma once
// A whole workflow run, for the CLI and the agent service alike: one descent and one return.
//
//   auto source  = load_workflow(path);                       // or a JSON body in memory
//   auto request = prepare_run(client, source, options);      // API format, edits, uploads
//   auto results = run_workflow(client, request, display);    // followed live to outputs on disk
//   auto summary = summarize(results, options);               // files, tally, the error to exit with
//
// ComfyUI's JSON layout (prompt inputs, extra_pnginfo, history status messages) stays in comfy/.

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comfy/client.hpp"
#include "comfy/display.hpp"
#include "comfy/events.hpp"
#include "comfy/workflow.hpp"
#include "core/result.hpp"

namespace autopod::comfy {

// A workflow as given, its format told: a file's contents, or a JSON object already in memory.
struct WorkflowSource {
  nlohmann::json workflow;         // API format (unwrapped from {"prompt": ...}) or the editor's
  WorkflowFormat format = WorkflowFormat::api;
  std::string where;               // named in errors: "flow.json", "request body"
  std::filesystem::path base_dir;  // Load* inputs naming local files are relative to it
};

// Tells the format of `workflow`; invalid_argument naming `where` when it is neither.
core::Result<WorkflowSource> make_source(nlohmann::json workflow, std::string where,
                                         std::filesystem::path base_dir);
// Reads a workflow file; invalid_argument with file:line:column when it is not JSON or not a
// workflow.
core::Result<WorkflowSource> load_workflow(const std::filesystem::path& path);

// What the user asks of a run (`comfy run` flags, POST /v1/generations fields).
struct RunOptions {
  std::vector<std::string> sets;              // NODE.INPUT=VALUE; NODE is an id or a title
  std::vector<std::filesystem::path> inputs;  // files for the Load* nodes, in node-id order
  int count = 1;                              // queue this many runs, seeds base+i
  bool random_seed = false;
  std::filesystem::path out_dir;              // empty: ./outputs/<prompt id>/
  bool wait = true;                           // false: submit, report the ids and return
  std::chrono::milliseconds timeout{0};       // bounds the whole run; 0: no limit
  bool allow_partial = false;                 // outputs dropped by validation are not an error
};

// Ready to submit: API format with the edits applied and the inputs uploaded.
struct RunRequest {
  nlohmann::json prompt;
  nlohmann::json extra_data = nlohmann::json::object();  // extra_pnginfo of editor workflows
  RunOptions options;
  // Seams for tests and benchmarks (no user setting): socket silence before asking over HTTP,
  // ping interval, download threads.
  std::chrono::milliseconds watchdog{3000};
  std::chrono::milliseconds ping_interval{10000};
  int download_workers = 4;
  // The WebSocket client id; empty: a fresh one. ComfyUI sends a prompt's events only to the
  // client id that submitted it, so a service that follows its prompts again after a restart
  // keeps the id.
  std::string client_id;
  // Prompt ids already queued under `client_id`, followed instead of submitting `prompt` (whose
  // nodes still name the steps); `count` is ignored. Those that ended meanwhile are read from
  // their history entries and their outputs downloaded.
  std::vector<std::string> attach;
};

using Note = std::function<void(const std::string& line)>;

// Detects the format, converts the editor's format with the server's /object_info (recorded as
// extra_pnginfo, as the editor does), applies --set, uploads --input files and local files named
// by Load* nodes. Everything about the workflow is checked before anything is uploaded.
// invalid_argument naming the file, node and input; the client's errors otherwise.
core::Result<RunRequest> prepare_run(ComfyClient& client, const WorkflowSource& source,
                                     const RunOptions& options, const Note& note = {});

struct RunResult {
  RunState state;
  std::vector<std::filesystem::path> files;   // saved outputs
  std::vector<std::string> download_errors;
  nlohmann::json dropped = nlohmann::json::object();  // node_errors of outputs that did not run
};

struct RunHooks {
  // All of a run's outputs are on disk (benchmarks time this).
  std::function<void(const std::string& prompt_id)> on_outputs_saved;
  // Each prompt once accepted (or attached), before any of its events is shown.
  std::function<void(const RunState& run)> on_submitted;
  // Asked between events: false stops following and run_workflow returns cancelled, leaving the
  // prompts to run on the server.
  std::function<bool()> keep_following;
};

// Submits and follows `request` (see runner.hpp for how). Fails only when the runs could not be
// submitted or followed (unreachable, rejected with its node errors, the timeout); each run's
// outcome is in its RunResult.
core::Result<std::vector<RunResult>> run_workflow(ComfyClient& client, const RunRequest& request,
                                                  Display& display, const RunHooks& hooks = {});

// What a finished command reports: the saved files and the first failure as the error to exit
// with (execution_failed: a node raised; interrupted; remote: lost; partial: outputs dropped by
// validation without allow_partial; io: outputs not saved).
struct RunSummary {
  std::vector<std::filesystem::path> files;
  int succeeded = 0, failed = 0, interrupted = 0, lost = 0, partial = 0, download_errors = 0;
  core::Status status;
};
RunSummary summarize(const std::vector<RunResult>& results, const RunOptions& options);

// What a history entry says of its prompt: success, error or interrupted (from status_str and
// status.messages), with the error's data. `comfy history` and the runner both read it here.
struct HistoryOutcome {
  Outcome outcome = Outcome::success;
  nlohmann::json error;
};
HistoryOutcome history_outcome(const nlohmann::json& entry);

}  // namespace autopod::comfy
