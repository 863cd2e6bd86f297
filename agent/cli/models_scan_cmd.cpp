// autopod models scan: every model's header checked, and with --hash the sha256 cache filled by a
// scan task (a detached job on the pod, or here for --local, that `models tasks`, `pause`,
// `resume` and `cancel` reach like a sync's); --fetch-info looks the hashes up on Civitai.

#include <algorithm>
#include <iostream>
#include <map>

#include "agent/cli/models_library_parts.hpp"
#include "core/http.hpp"
#include "models/sync.hpp"

namespace autopod::agent::library_cli {
namespace {

using core::ErrorCode;
using nlohmann::json;

// Looks each hashed file up on Civitai unless it has STEM.civitai.info already, writing that and a
// preview (only where none exists). Returns a note per file; stops asking at a 429 that outlasted
// the retries (returned after the notes, so what was found is kept).
core::Status fetch_info(const ModelsRoot& target,
                        const std::vector<models::LibraryFile>& files,
                        const std::map<std::string, std::string>& sha,
                        std::map<std::string, std::string>& notes) {
  auto transport = core::make_curl_transport();
  auto ep = models::Endpoints::from_env();
  for (const auto& file : files) {
    auto h = sha.find(file.path);
    if (h == sha.end() || h->second.empty())
      continue;
    std::string stem = file.relative.substr(0, file.relative.rfind('.'));
    stem = stem.substr(stem.rfind('/') + 1);
    if (std::find(file.sidecars.begin(), file.sidecars.end(), stem + ".civitai.info") !=
        file.sidecars.end()) {
      notes[file.path] = "civitai info present";
      continue;
    }
    auto found = models::civitai_by_hash(*transport, ep, h->second);
    if (!found && found.error().code == ErrorCode::rate_limited)
      return core::fail(found.error());
    if (!found) {
      notes[file.path] = found.error().message;
      continue;
    }
    if (!*found) {
      notes[file.path] = "not on civitai";
      continue;
    }
    const json& v = **found;
    std::optional<std::pair<std::string, std::string>> preview;
    auto images = v.value("images", json::array());
    if (file.preview.empty() && !images.empty() && images[0].value("type", "image") == "image") {
      std::string url = images[0].value("url", "");
      auto dot = url.rfind('.');
      std::string ext = dot != std::string::npos && url.find('/', dot) == std::string::npos
                            ? url.substr(dot)
                            : "";
      if (ext != ".png" && ext != ".webp" && ext != ".jpg" && ext != ".jpeg" && ext != ".gif")
        ext = ".jpeg";
      if (auto bytes = models::fetch_preview(*transport, ep, url))
        preview = std::make_pair(ext, *bytes);
    }
    TRY(models::write_sidecars(target.exec, target.root, file.path,
                               {{".civitai.info", v.dump(2) + "\n"}}, preview));
    notes[file.path] =
        "civitai: " + v.value("model", json::object()).value("name", std::string("?")) + " " +
        v.value("name", std::string()) + (preview ? " (preview written)" : "");
  }
  return {};
}

std::string progress_line(const models::Task& t) {
  return "hashing: " + std::to_string(t.files_done) + "/" + std::to_string(t.files) + " files, " +
         format_bytes(static_cast<std::uint64_t>(t.bytes)) + " of " +
         format_bytes(static_cast<std::uint64_t>(std::max<std::int64_t>(t.total, 0))) + ", " +
         format_bytes(static_cast<std::uint64_t>(t.bytes_per_sec)) + "/s, eta " +
         (t.eta_secs < 0 ? std::string("?") : std::to_string(t.eta_secs) + "s");
}

// Hashes the files the listing knows no hash for as one scan task, following it with progress
// until it ends; `hashed` gets every file's hash (the listing's, then the job's per-file
// results). Returns the task as it ended (paused or cancelled from another terminal too).
core::Result<models::Task> hash_as_task(Context& ctx,
                                        const Flags& f,
                                        const ModelsRoot& target,
                                        const models::LibraryListing& listing,
                                        std::map<std::string, models::HashedFile>& hashed) {
  if (f.max_rate_mib < 0)
    return core::fail(ErrorCode::invalid_argument, "--max-rate must not be negative",
                      "give MiB/s, for example --max-rate 200; 0 or none: no cap");
  models::ScanRequest request;
  request.max_bytes_per_sec = f.max_rate_mib << 20;
  for (const auto& file : listing.files)
    if (!file.sha256.empty())  // a current cache entry or autopod's record: nothing to read
      hashed[file.path] = {file.path, file.sha256, true, 0, ""};
    else
      request.paths.push_back(file.path);
  models::Task none;
  none.state = models::TaskState::done;
  if (request.paths.empty())
    return none;
  TRY_ASSIGN(auto cfg, ctx.config());
  models::TaskStore store(cfg->home);
  TRY_ASSIGN(auto run, models::SyncRun::scan(store, {target.pod, target.exec, target.root}, request));
  const std::string id = run.task_ids().front();
  if (!ctx.json())
    std::cerr << "scan task " << id << ": " << request.paths.size() << " files to hash "
              << (target.pod.empty() ? "here" : "on " + target.pod)
              << " (detached: `autopod models pause|cancel " << id
              << "` from another terminal; `autopod models tasks` re-attaches)\n";
  auto last = run.follow([&](const models::SyncProgress& p) {
    if (!ctx.json() && !p.tasks.empty())
      ctx.progress(progress_line(p.tasks.front()));
  });
  ctx.finish_progress();
  TRY_ASSIGN(auto done, models::scan_results(target.exec, target.root, run.job()));
  for (auto& h : done)
    hashed[h.path] = h;
  if (!last)
    return core::fail(last.error());
  return store.get(id);
}

// One line per file: state, path, recognition, hash (cached or read), problem, Civitai's note.
void report(Context& ctx,
            const models::LibraryFile& file,
            const models::HashedFile* h,
            const std::string& note) {
  std::string sha = h ? h->sha256 : file.sha256;
  bool bad = file.completeness == "incomplete" || file.completeness == "malformed" ||
             file.completeness == "unreadable";
  if (ctx.json()) {
    json j = to_json(file);
    j["sha256"] = sha.empty() ? json() : json(sha);
    if (h)
      j["hash_cached"] = h->cached, j["bytes_read"] = h->bytes_read;
    if (h && !h->error.empty())
      j["hash_error"] = h->error;
    if (!note.empty())
      j["civitai"] = note;
    std::cout << j.dump() << "\n";
    return;
  }
  std::cout << (bad ? file.completeness : "ok") << "  " << file.path << "  "
            << models::to_string(file.recognition.kind) << " " << what(file.recognition)
            << (sha.empty() ? "" : "  sha256 " + sha) << (h && h->cached ? " (cached)" : "")
            << (h && !h->error.empty() ? "  (not hashed: " + h->error + ")" : "")
            << (file.problem.empty() ? "" : "  (" + file.problem + ")")
            << (note.empty() ? "" : "  " + note) << "\n";
}

}  // namespace

core::Status cmd_scan(Context& ctx, const Flags& f, const ReachModelsRoot& reach_pod) {
  TRY_ASSIGN(auto target, reach(f, reach_pod));
  TRY_ASSIGN(auto listing,
             models::list_library(target.exec, target.root, query(f.folder, {}, false)));
  std::map<std::string, models::HashedFile> hashed;
  models::Task task;  // without --hash the scan reads headers only: one request, no task
  task.state = models::TaskState::done;
  if (f.hash || f.fetch_info) {
    TRY_ASSIGN(task, hash_as_task(ctx, f, target, listing, hashed));
  }
  std::map<std::string, std::string> notes, hashes;
  core::Status looked_up;
  if (f.fetch_info && task.state == models::TaskState::done) {
    for (const auto& [path, h] : hashed)
      hashes[path] = h.sha256;
    looked_up = fetch_info(target, listing.files, hashes, notes);
  }
  int problems = 0, unhashed = 0;
  std::uint64_t read = 0;
  for (const auto& file : listing.files) {
    auto h = hashed.find(file.path);
    const models::HashedFile* got = h == hashed.end() ? nullptr : &h->second;
    problems += file.completeness == "incomplete" || file.completeness == "malformed" ||
                file.completeness == "unreadable";
    unhashed += got && !got->error.empty();
    read += got ? got->bytes_read : 0;
    report(ctx, file, got, notes.count(file.path) ? notes[file.path] : "");
  }
  if (!ctx.json())
    std::cerr << listing.files.size() << " files, " << problems << " incomplete or malformed"
              << (f.hash || f.fetch_info ? ", " + format_bytes(read) + " hashed" : "") << "\n";
  // Paused or cancelled from another terminal: as for a sync, that is what was asked (exit 0).
  if (task.state == models::TaskState::paused)
    std::cerr << "scan task " << task.id << " paused after " << task.files_done << " of "
              << task.files << " files: `autopod models resume " << task.id
              << "` continues it (files done are not read again)\n";
  else if (task.state == models::TaskState::cancelled)
    std::cerr << "scan task " << task.id << " cancelled after " << task.files_done << " of "
              << task.files << " files\n";
  if (unhashed)
    return core::fail(ErrorCode::io,
                      std::to_string(unhashed) + " file(s) could not be hashed (listed above)",
                      "check them on the pod and scan again");
  return looked_up;
}

}  // namespace autopod::agent::library_cli
