// autopod models ls|info|scan|meta|rm: the model library on the pod's volume (or --local DIR).
// The pod sends header bytes only; models/library.hpp parses and recognises them here.

#include "agent/cli/models_library_cmd.hpp"
#include "agent/cli/models_library_parts.hpp"

#include <algorithm>
#include <iostream>
#include <map>

#include "core/process.hpp"
#include "models/library.hpp"

namespace autopod::agent {
namespace library_cli {

using core::ErrorCode;
using nlohmann::json;

models::PodExec local_exec() {
  return [](const std::string& command, const std::string& input) {
    return core::run_capture({"sh", "-c", command}, input);
  };
}

core::Result<ModelsRoot> reach(const Flags& f, const ReachModelsRoot& reach_pod) {
  if (f.local.empty())
    return reach_pod(f.pod, f.models_root);
  if (!std::filesystem::is_directory(f.local))
    return core::fail(ErrorCode::not_found, "no models root " + f.local,
                      "pass the folder that holds checkpoints/, loras/, ...");
  // Absolute: the scan task records it, and `models tasks|pause|cancel` may run elsewhere.
  return ModelsRoot{local_exec(), std::filesystem::absolute(f.local).lexically_normal().string(), ""};
}

std::string what(const models::Recognition& r) {
  std::string s = r.architecture;
  if (!r.variant.empty())
    s += " " + r.variant;
  if (!r.base.empty())
    s += " for " + r.base;
  return s;
}

models::LibraryQuery query(const std::string& folder, std::vector<std::string> paths, bool texts) {
  models::LibraryQuery q;
  q.folder = folder, q.paths = std::move(paths), q.sidecar_texts = texts;
  return q;
}

json to_json(const models::LibraryFile& f) {
  json j = {{"path", f.path},
            {"folder", f.folder},
            {"extra_dir", f.extra_dir.empty() ? json() : json(f.extra_dir)},
            {"size", f.size},
            {"format", f.format},
            {"kind", models::to_string(f.recognition.kind)},
            {"architecture", f.recognition.architecture},
            {"variant", f.recognition.variant},
            {"base", f.recognition.base},
            {"precision", f.recognition.precision},
            {"pickle", f.recognition.pickle},
            {"completeness", f.completeness},
            {"problem", f.problem},
            {"sha256", f.sha256.empty() ? json() : json(f.sha256)},
            {"preview", f.preview.empty() ? json() : json(f.preview)},
            {"sidecars", f.sidecars},
            {"source", f.record ? json(f.record->source) : json()}};
  return j;
}

}  // namespace library_cli

namespace {

using namespace library_cli;

core::Status cmd_ls(Context& ctx, const Flags& f, const ReachModelsRoot& reach_pod) {
  TRY_ASSIGN(auto target, reach(f, reach_pod));
  TRY_ASSIGN(auto listing,
             models::list_library(target.exec, target.root, query(f.folder, {}, false)));
  if (ctx.json()) {
    json files = json::array();
    for (const auto& file : listing.files)
      files.push_back(to_json(file));
    print_json({{"root", target.root}, {"files", files}});
    return {};
  }
  if (listing.files.empty()) {
    std::cerr << "no model files under " << target.root << (f.folder.empty() ? "" : "/" + f.folder)
              << "\n";
    return {};
  }
  // A folder's files under the root, then those in each directory extra_model_paths.yaml names.
  std::map<std::pair<std::string, std::string>, std::vector<const models::LibraryFile*>> by_folder;
  for (const auto& file : listing.files)
    by_folder[{file.folder, file.extra_dir}].push_back(&file);
  std::int64_t total = 0;
  for (const auto& [key, files] : by_folder) {
    const auto& [folder, extra] = key;
    std::int64_t bytes = 0;
    for (const auto* file : files)
      bytes += file->size;
    total += bytes;
    std::cout << folder << "/" << (extra.empty() ? "" : " = " + extra + " (extra_model_paths.yaml)")
              << "  (" << files.size() << " files, "
              << format_bytes(static_cast<std::uint64_t>(bytes)) << ")\n";
    std::vector<std::vector<std::string>> rows = {{"  NAME", "SIZE", "KIND", "ARCHITECTURE",
                                                   "PRECISION", "STATE", "SHA256", "PREVIEW",
                                                   "SOURCE"}};
    for (const auto* file : files) {
      std::string state = file->completeness == "-" ? "" : file->completeness;
      if (file->recognition.pickle)
        state += state.empty() ? "pickle" : ", pickle";
      std::string rel = file->relative.substr(std::min(file->relative.size(), folder.size() + 1));
      rows.push_back({"  " + rel, format_bytes(static_cast<std::uint64_t>(file->size)),
                      models::to_string(file->recognition.kind), what(file->recognition),
                      file->recognition.precision, state,
                      file->sha256.empty() ? "" : file->sha256.substr(0, 12),
                      file->preview.empty() ? "" : "yes",
                      file->record ? file->record->source : ""});
    }
    print_table(rows);
  }
  std::cout << "total: " << listing.files.size() << " files, "
            << format_bytes(static_cast<std::uint64_t>(total)) << "\n";
  return {};
}

// The sidecars' metadata: JSON ones parsed, the others (.md) as text.
json sidecar_json(const models::LibraryFile& f) {
  json out = json::object();
  for (const auto& [name, text] : f.sidecar_texts) {
    auto j = json::parse(text, nullptr, false);
    out[name] = j.is_discarded() ? json(text) : j;
  }
  return out;
}

core::Status cmd_info(Context& ctx, const Flags& f, const ReachModelsRoot& reach_pod) {
  TRY_ASSIGN(auto target, reach(f, reach_pod));
  TRY_ASSIGN(auto listing,
             models::list_library(target.exec, target.root, query("", {f.path}, true)));
  if (listing.files.empty())
    return core::fail(ErrorCode::not_found, "no model file " + f.path,
                      "list them: autopod models ls");
  const auto& file = listing.files.front();
  json j = to_json(file);
  j["tensor_count"] = file.tensor_count;
  j["dtypes"] = file.dtypes;
  j["metadata"] = file.metadata;
  j["sidecar_metadata"] = sidecar_json(file);
  if (file.record)
    j["record"] = {{"source", file.record->source},
                   {"revision", file.record->revision},
                   {"sha256", file.record->sha256}};
  if (ctx.json()) {
    print_json(j);
    return {};
  }
  std::vector<std::vector<std::string>> rows = {{"FIELD", "VALUE"}};
  for (const char* k : {"path", "folder", "format", "kind", "architecture", "variant", "base",
                        "precision", "completeness", "problem", "sha256", "preview", "source"})
    if (!j[k].is_null() && j[k] != "")
      rows.push_back({k, j[k].is_string() ? j[k].get<std::string>() : j[k].dump()});
  rows.push_back({"size", format_bytes(static_cast<std::uint64_t>(file.size)) + " (" +
                              std::to_string(file.size) + " bytes)"});
  if (file.recognition.pickle)
    rows.push_back(
        {"warning", "pickle: loading it can run code (ComfyUI loads it with weights_only)"});
  rows.push_back({"tensors", std::to_string(file.tensor_count) + " " + j["dtypes"].dump()});
  for (const auto& [k, v] : file.metadata)
    rows.push_back({"metadata." + k, v.size() > 200 ? v.substr(0, 200) + "..." : v});
  for (const auto& s : file.sidecars)
    rows.push_back({"sidecar", s});
  print_table(rows);
  for (const auto& [name, text] : file.sidecar_texts)
    std::cout << "\n== " << name << "\n"
              << (text.size() > 2000 ? text.substr(0, 2000) + "\n..." : text) << "\n";
  return {};
}

core::Status cmd_meta(Context& ctx, const Flags& f, const ReachModelsRoot& reach_pod) {
  TRY_ASSIGN(auto target, reach(f, reach_pod));
  TRY_ASSIGN(auto written, models::write_meta(target.exec, target.root, f.path, f.sets, f.preview));
  if (ctx.json())
    print_json({{"written", written}});
  else
    for (const auto& w : written)
      std::cout << "wrote " << w << "\n";
  return {};
}

core::Status cmd_rm(Context& ctx, const Flags& f, const ReachModelsRoot& reach_pod) {
  TRY_ASSIGN(auto target, reach(f, reach_pod));
  std::string list;
  for (const auto& p : f.paths)
    list += (list.empty() ? "" : ", ") + p;
  TRY(confirm("remove " + list + " and their sidecars from " + target.root, f.yes));
  TRY_ASSIGN(auto removed, models::remove_models(target.exec, target.root, f.paths));
  if (ctx.json())
    print_json({{"removed", removed}});
  else
    for (const auto& r : removed)
      std::cout << "removed " << r << "\n";
  return {};
}

}  // namespace

void add_models_library_commands(CLI::App& models,
                                 Context& ctx,
                                 int& exit_code,
                                 ReachModelsRoot reach_pod) {
  static Flags f;
  static ReachModelsRoot pod;
  pod = std::move(reach_pod);
  auto where = [](CLI::App* c, bool positional_pod) {
    if (positional_pod)
      c->add_option("POD", f.pod, "pod id or name (default: the only pod)");
    else
      c->add_option("--pod", f.pod, "pod id or name (default: the only pod)");
    c->add_option("--local", f.local, "a models root on this machine instead of a pod");
    c->add_option("--models-root", f.models_root, "the pod's models root (default: the pod's)");
  };
  auto cmd = [&ctx, &exit_code](
                 CLI::App* c, core::Status (*fn)(Context&, const Flags&, const ReachModelsRoot&)) {
    c->callback(run(ctx, exit_code, [&ctx, fn] { return fn(ctx, f, pod); }));
  };
  auto* ls = models.add_subcommand(
      "ls", "model files with kind, architecture, completeness, hash, preview, source");
  where(ls, true);
  ls->add_option("--folder", f.folder, "only this folder (checkpoints, loras, ...)");
  cmd(ls, cmd_ls);
  auto* info =
      models.add_subcommand("info", "one model: recognition, header metadata, tensors, sidecars");
  info->add_option("PATH", f.path,
                   "the model, relative to the models root (loras/x.safetensors) or absolute")
      ->required();
  where(info, true);
  cmd(info, cmd_info);
  auto* scan =
      models.add_subcommand("scan", "check every model's header; --hash fills the sha256 cache");
  where(scan, true);
  scan->add_option("--folder", f.folder, "only this folder");
  scan->add_flag("--hash", f.hash,
                 "sha256 of each file, cached in NAME.sha256 beside it (read once)");
  scan->add_flag(
      "--fetch-info", f.fetch_info,
      "look each hash up on Civitai: NAME.civitai.info and a preview where none (implies --hash)");
  scan->add_option("--max-rate", f.max_rate_mib,
                   "with --hash: read at most this many MiB/s (a running ComfyUI keeps its disk)");
  cmd(scan, cmd_scan);
  auto* meta = models.add_subcommand("meta", "write a model's metadata sidecar and preview");
  meta->add_option("PATH", f.path, "the model, relative to the models root or absolute")
      ->required();
  where(meta, true);
  meta->add_option("--set", f.sets,
                   "KEY=VALUE into NAME.metadata.json (repeatable; description, trigger_words, "
                   "tags, notes, ...)");
  meta->add_option("--preview", f.preview, "an image on this machine, written as NAME.preview.EXT");
  cmd(meta, cmd_meta);
  auto* rm = models.add_subcommand("rm", "remove models and every sidecar sharing their stem");
  rm->add_option("PATH", f.paths, "models, relative to the models root or absolute")->required();
  where(rm, false);
  rm->add_flag("--yes,-y", f.yes, "do not ask");
  cmd(rm, cmd_rm);
}

}  // namespace autopod::agent
