// A run's two ends: preparing a workflow for submission, and summarizing what the runs did.

#include "comfy/run.hpp"
#include "comfy/workflow.hpp"

namespace autopod::comfy {

using core::ErrorCode;
using core::fail;
using nlohmann::json;
namespace fs = std::filesystem;

core::Result<WorkflowSource> make_source(json workflow, std::string where, fs::path base_dir) {
  TRY_ASSIGN(auto format, detect_format(workflow, where));
  return WorkflowSource{std::move(workflow), format, std::move(where), std::move(base_dir)};
}

core::Result<WorkflowSource> load_workflow(const fs::path& path) {
  TRY_ASSIGN(auto workflow, load_json_file(path));
  return make_source(std::move(workflow), path.string(), path.parent_path());
}

core::Result<RunRequest> prepare_run(ComfyClient& client, const WorkflowSource& source,
                                     const RunOptions& options, const Note& note) {
  auto tell = [&](const std::string& line) {
    if (note) note(line);
  };
  if (options.count < 1) return fail(ErrorCode::invalid_argument, "--count must be at least 1");
  RunRequest req;
  req.options = options;
  if (source.format == WorkflowFormat::ui) {
    TRY_ASSIGN(auto info, client.object_info());
    TRY_ASSIGN(req.prompt, ui_to_api(source.workflow, info));
    // Saved PNGs then carry the editor workflow, as when the editor queues it.
    req.extra_data = {{"extra_pnginfo", {{"workflow", source.workflow}}}};
    tell("converted " + source.where + " from the editor's format to API format (" +
         std::to_string(req.prompt.size()) + " nodes)");
  } else {
    req.prompt = source.workflow;
  }
  for (const auto& s : options.sets) TRY(apply_set(req.prompt, s));
  TRY_ASSIGN(auto uploads, upload_slots(req.prompt, options.inputs, source.base_dir));
  for (const auto& u : uploads) {
    TRY_ASSIGN(auto name, client.upload(u.file));
    req.prompt[u.node]["inputs"][u.input] = name;
    tell("uploaded " + u.file.string() + " as " + name + " for node " + u.node);
  }
  return req;
}

HistoryOutcome history_outcome(const json& entry) {
  HistoryOutcome h;
  json status = entry.is_object() ? entry.value("status", json::object()) : json::object();
  if (!status.is_object()) status = json::object();
  std::string str = status.value("status_str", "");
  h.outcome = str == "error" ? Outcome::error : Outcome::success;
  json messages = status.value("messages", json::array());
  if (!messages.is_array()) return h;
  for (const auto& m : messages) {
    if (!m.is_array() || m.size() < 2) continue;
    if (m[0] == "execution_interrupted") {
      h.outcome = Outcome::interrupted;
      h.error = m[1];
    } else if (m[0] == "execution_error") {
      h.outcome = Outcome::error;
      h.error = m[1];
    }
  }
  return h;
}

namespace {

std::string describe_run(const RunState& s) {
  return "run " + std::to_string(s.index) + " (prompt " + s.prompt_id + ") " + to_string(s.outcome) +
         (s.error.is_null() ? "" : ": " + describe_failure(s));
}

}  // namespace

RunSummary summarize(const std::vector<RunResult>& results, const RunOptions& options) {
  RunSummary sum;
  for (const auto& r : results) {
    sum.files.insert(sum.files.end(), r.files.begin(), r.files.end());
    sum.download_errors += static_cast<int>(r.download_errors.size());
    switch (r.state.outcome) {
      case Outcome::error: ++sum.failed; break;
      case Outcome::interrupted: ++sum.interrupted; break;
      case Outcome::lost: ++sum.lost; break;
      case Outcome::partial: ++sum.partial; break;
      default: ++sum.succeeded; break;
    }
  }
  // The first run with the outcome that decides the error, described.
  auto first = [&](Outcome outcome) {
    for (const auto& r : results)
      if (r.state.outcome == outcome)
        return describe_run(r.state) +
               (outcome == Outcome::partial ? ":" + format_prompt_errors({{"node_errors", r.dropped}}) : "");
    return std::string();
  };
  std::string tally = "\n" + std::to_string(results.size()) + " run(s): " + std::to_string(sum.failed) +
                      " failed, " + std::to_string(sum.interrupted) + " interrupted, " +
                      std::to_string(sum.lost) + " lost, " + std::to_string(sum.partial) + " partial";
  if (sum.failed > 0)
    sum.status = fail(ErrorCode::execution_failed, first(Outcome::error) + tally,
                      "see the node and message above; autopod comfy history --prompt ID has the full entry");
  else if (sum.interrupted > 0)
    sum.status = fail(ErrorCode::interrupted, first(Outcome::interrupted) + tally,
                      "queue it again with autopod comfy run");
  else if (sum.lost > 0)
    sum.status = fail(ErrorCode::remote, first(Outcome::lost) + tally,
                      "ComfyUI restarted or the queue was cleared; queue it again with autopod comfy run");
  else if (sum.partial > 0 && !options.allow_partial)
    sum.status = fail(ErrorCode::partial, first(Outcome::partial) + tally,
                      "the outputs above were dropped by validation and the others saved; fix those "
                      "inputs, or pass --allow-partial to accept this");
  else if (sum.download_errors > 0)
    sum.status = fail(ErrorCode::io, std::to_string(sum.download_errors) + " output file(s) could not be saved (see above)",
                      "the run succeeded on the server; autopod comfy history --prompt ID lists its outputs");
  return sum;
}

}  // namespace autopod::comfy
