#pragma once
// Workflow files (../shared/reference/comfyui-api.md §2.1, §7): loading with line and column in
// errors, telling the API format from the editor's UI format, converting UI to API with the
// server's /object_info, and the edits `comfy run` makes (--set, seeds, uploaded inputs).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comfy/events.hpp"
#include "core/result.hpp"

namespace autopod::comfy {

enum class WorkflowFormat { api, ui };

// Parses a JSON file; errors name the file, line and column.
core::Result<nlohmann::json> load_json_file(const std::filesystem::path& path);

// API format is returned as is (unwrapped from {"prompt": ...} when a tool wrapped it); UI format
// is recognised by its "nodes" array. invalid_argument when it is neither.
core::Result<WorkflowFormat> detect_format(nlohmann::json& workflow, const std::string& where);

// What the editor fills in when it queues: `%date:FORMAT%` in text widgets takes this time.
struct ConvertOptions {
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
  // Seeds the picks of {a|b} choices in dynamic prompts; the same seed makes the same picks.
  std::uint64_t choice_seed = std::random_device{}();
};

// Converts an editor-format workflow to API format using /object_info: widget values mapped to
// input names (skipping control_after_generate and upload-button values), links to [node, slot]
// through Reroute nodes, bypassed (mode 4) nodes passed through, muted (mode 2) nodes, notes and
// primitives removed, GetNode/SetNode pairs resolved. A node that cannot be converted (not
// installed on the server, a subgraph) is an error naming it, with how to export API format.
// `object_info` keeps the server's key order: servers before 2024-08-15 send no input_order, and
// the declaration order is then the widget order.
core::Result<nlohmann::json> ui_to_api(const nlohmann::json& ui, const nlohmann::ordered_json& object_info,
                                       const ConvertOptions& options = {});

// A saved /object_info, parsed keeping its key order; errors name the file, line and column.
core::Result<nlohmann::ordered_json> load_object_info(const std::filesystem::path& path);

// --set NODE.INPUT=VALUE. NODE is a node id or a _meta.title; VALUE becomes an int, float, bool,
// JSON (objects, arrays, quoted strings, null) or else a plain string.
core::Status apply_set(nlohmann::json& prompt, const std::string& assignment);

// (node id, input name) of integer seed inputs ("seed", "noise_seed").
std::vector<std::pair<std::string, std::string>> seed_inputs(const nlohmann::json& prompt);
void set_seeds(nlohmann::json& prompt, std::uint64_t seed);

// An image-loading input that names a file on this machine, to upload before submitting.
struct UploadSlot {
  std::string node;
  std::string input;
  std::filesystem::path file;
};
// Inputs of Load* nodes (LoadImage, LoadImageMask, LoadVideo, ...): `inputs` (--input FILE) fill
// them in node-id order; other values that name an existing local file (relative to `base_dir`
// or absolute) are uploaded too. invalid_argument when there are more files than inputs or an
// --input file does not exist.
core::Result<std::vector<UploadSlot>> upload_slots(const nlohmann::json& prompt,
                                                   const std::vector<std::filesystem::path>& inputs,
                                                   const std::filesystem::path& base_dir);

// Class types and titles, for the display.
std::map<std::string, NodeInfo> node_infos(const nlohmann::json& prompt);

}  // namespace autopod::comfy
