#pragma once
// Internal to the library commands (models_library_cmd.cpp: ls, info, meta, rm and the flags;
// models_scan_cmd.cpp: scan): what they share.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/cli/models_library_cmd.hpp"
#include "models/library.hpp"

namespace autopod::agent::library_cli {

struct Flags {
  std::string pod, local, models_root, folder, path, preview;
  std::vector<std::string> paths, sets;
  bool hash = false, fetch_info = false, yes = false;
  std::int64_t max_rate_mib = 0;  // scan --max-rate, MiB/s; 0: no cap
};

// Runs the pod-side program on this machine (`sh -c`), for --local DIR.
models::PodExec local_exec();
// The pod's models root, or --local DIR (not_found when it is no directory).
core::Result<ModelsRoot> reach(const Flags& f, const ReachModelsRoot& reach_pod);
// "sdxl", "flux dev", "lora for sdxl": a recognition in a few words.
std::string what(const models::Recognition& r);
models::LibraryQuery query(const std::string& folder, std::vector<std::string> paths, bool texts);
// One file as `ls --json` prints it.
nlohmann::json to_json(const models::LibraryFile& f);

// autopod models scan (models_scan_cmd.cpp).
core::Status cmd_scan(Context& ctx, const Flags& f, const ReachModelsRoot& reach_pod);

}  // namespace autopod::agent::library_cli
