// The pod side of a sync, driven from here: one python3 run per request, the program on stdin.

#include "models/pod.hpp"

#include "core/random.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using nlohmann::json;

// Reads the program's length, then the program, then leaves the request line for it.
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Names what is missing before anything runs (exit 127), then reads the program's length, the
// program, and leaves the request line for it.
constexpr const char* k_bootstrap =
    "command -v python3 >/dev/null 2>&1 || { echo \"autopod: python3 is not installed on the pod "
    "(not found in PATH=$PATH)\" >&2; exit 127; }; "
    "exec python3 -c 'import sys;n=int(sys.stdin.readline());"
    "exec(compile(sys.stdin.read(n),\"autopod_fetch.py\",\"exec\"))'";

json tokens(const PodJobOptions& o) {
  json t = json::object();
  if (!o.hf_token.empty()) t["hf"] = o.hf_token;
  if (!o.civitai_token.empty()) t["civitai"] = o.civitai_token;
  return t;
}

}  // namespace

const std::string& pod_program() {
  static const std::string text =
#include "pod_program.inc"
      ;
  return text;
}

core::Result<json> pod_request(const PodExec& exec, const json& request) {
  const auto& program = pod_program();
  std::string input = std::to_string(program.size()) + "\n" + program + request.dump() + "\n";
  TRY_ASSIGN(auto out, exec(k_bootstrap, input));
  if (out.exit_code == 127)
    return core::fail(ErrorCode::not_found, trim(out.err).empty() ? "the pod has no python3" : trim(out.err),
                      "autopod installs nothing on the pod: it needs sh and python3 there (ComfyUI's "
                      "own); use an image with ComfyUI, or put python3 on the PATH of ssh sessions");
  auto lines = out.out;
  auto last = lines.find_last_not_of('\n');
  auto start = last == std::string::npos ? 0 : lines.rfind('\n', last);
  auto answer = json::parse(lines.substr(start == std::string::npos ? 0 : start), nullptr, false);
  if (answer.is_discarded() || !answer.is_object())
    return core::fail(ErrorCode::protocol,
                      "the pod-side program answered no JSON (exit " + std::to_string(out.exit_code) +
                          "): " + trim(out.err.empty() ? out.out : out.err),
                      "check that ssh to the pod works: autopod ssh POD true");
  if (answer.contains("error"))
    return core::fail(ErrorCode::remote, "on the pod: " + answer["error"].get<std::string>());
  return answer;
}

core::Result<RootListing> pod_listing(const PodExec& exec, const std::string& root) {
  TRY_ASSIGN(auto j, pod_request(exec, {{"op", "list"}, {"root", root}}));
  RootListing listing;
  for (const auto& r : j.value("records", json::array())) {
    RootEntry e;
    e.path = r.value("path", "");
    e.record = PlacedRecord{r.value("source", ""),   r.value("folder", ""),
                            r.value("name", ""),     r.value("revision", ""),
                            r.value("etag", ""),     r.value("size", std::int64_t{0}),
                            r.value("mtime_ns", std::int64_t{0}), r.value("sha256", "")};
    e.size = r.value("now_size", std::int64_t{-1});
    e.mtime_ns = r.value("now_mtime_ns", std::int64_t{0});
    listing.placed.push_back(std::move(e));
  }
  for (const auto& f : j.value("files", json::array())) listing.files.emplace_back(f.get<std::string>());
  listing.free_bytes = j.value("free_bytes", std::int64_t{-1});
  if (auto dirs = j.find("folder_dirs"); dirs != j.end() && dirs->is_object())
    for (auto it = dirs->begin(); it != dirs->end(); ++it)
      listing.folder_dirs[it.key()] = it->get<std::string>();
  return listing;
}

core::Result<std::string> pod_start(const PodExec& exec, const std::string& root,
                                    const SyncPlan& plan, const PodJobOptions& options) {
  json prune = json::array(), files = json::array();
  for (const auto& item : plan.items) {
    if (item.action == Action::prune) prune.push_back(item.path.string());
    if (!item.resolved) continue;
    const auto& r = *item.resolved;
    files.push_back({{"source", r.source}, {"url", r.url}, {"name", r.name}, {"folder", r.folder},
                     {"size", r.size}, {"sha256", r.sha256}, {"validator", r.validator},
                     {"revision", r.revision}, {"ranges", r.ranges}, {"origin", r.origin},
                     {"auth", r.auth}, {"priority", options.priority}});
  }
  if (!prune.empty()) TRY(pod_request(exec, {{"op", "prune"}, {"root", root}, {"paths", prune}}));
  if (files.empty()) return std::string();
  std::string job = core::random_hex(8);
  TRY(pod_request(exec, {{"op", "start"}, {"root", root}, {"job", job}, {"files", files},
                         {"connections", options.connections}, {"parallel", options.parallel},
                         {"priority", options.priority}, {"stall_secs", options.stall_secs},
                         {"chunk_bytes", options.chunk_bytes},
                         {"tokens", tokens(options)}}));
  return job;
}

core::Result<json> pod_status(const PodExec& exec, const std::string& root, const std::string& job,
                              std::chrono::milliseconds wait) {
  json request = {{"op", "status"}, {"root", root}, {"job", job}};
  if (wait.count() > 0)
    request["wait_secs"] = static_cast<double>(wait.count()) / 1000.0;
  TRY_ASSIGN(auto j, pod_request(exec, request));
  auto jobs = j.value("jobs", json::array());
  if (jobs.empty())
    return core::fail(ErrorCode::not_found, "no job " + job + " under " + root + " on the pod",
                      "its state lives in <models_root>/.autopod/jobs/");
  return jobs.at(0);
}

core::Status pod_control(const PodExec& exec, const std::string& root, const std::string& job,
                         TaskControl control, const PodJobOptions& options) {
  if (control == TaskControl::resume || control == TaskControl::retry) {
    TRY(pod_request(exec, {{"op", "resume"}, {"root", root}, {"job", job}, {"tokens", tokens(options)}}));
    return {};
  }
  TRY(pod_request(exec, {{"op", "control"}, {"root", root}, {"job", job},
                         {"action", control == TaskControl::pause ? "pause" : "cancel"}}));
  return {};
}

}  // namespace autopod::models
