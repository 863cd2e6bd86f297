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

// What the editor fills in when it queues a workflow.
struct ConvertOptions {
  // %date:FORMAT% in save nodes' filename_prefix is this time, in the local time zone.
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
  // Seeds the picks of {a|b} choices in dynamic prompts; the same seed makes the same picks.
  std::uint64_t choice_seed = std::random_device{}();
};

// Converts an editor-format workflow to the API prompt the ComfyUI frontend's graphToPrompt
// queues, using the server's /object_info:
// - widgets_values mapped by position onto the class's widgets (input_order, else the declared
//   order; a seed's control value, "randomize" or a 2023 boolean, and the upload button's value
//   skipped); widgets without a saved value get the declared default; list values are sent as
//   {"__value__": [...]};
// - links resolved through Reroute, PrimitiveNode (its value), GetNode/SetNode, and bypassed
//   (mode 4) nodes, which pass on the input in the same slot when its type fits, else the first
//   of exactly that type, else the first that fits; muted (mode 2) and editor-only nodes left out,
//   with the inputs linked to them;
// - legacy group nodes ("workflow>NAME" in extra.groupNodes) expanded into nodes "ID:0", ...;
// - save nodes' filename_prefix with %date:FORMAT% (yyyy yy MM M dd d hh h mm m ss s; a format
//   ends at its first dot) and %NODE.WIDGET% (by "Node name for S&R" or title) replaced, and
//   dynamicPrompts text with comments removed and {a|b} choices picked.
// Fields of any type are read defensively. Fails with invalid_argument naming the node (id,
// type, field) for a node the server does not have or a malformed workflow, and unsupported for
// a subgraph (not expanded yet); the hint says how to export API format instead.
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

// A model file a workflow names (comfyui-api.md §5; model-sources.md §6): a loader input's value,
// or an entry of a `models` list the editor embeds (at the top level or in a node's properties).
struct ModelReference {
  std::string folder;  // ComfyUI folder key (the legacy aliases `clip`, `unet` made text_encoders, diffusion_models)
  std::string name;    // relative to the folder, as the workflow names it (may hold a subfolder)
  std::string url;     // from an embedded list; empty otherwise
  std::string sha256;  // from an embedded list (hash_type sha256 or none), lowercase; or empty
  std::string where;   // "node 4 CheckpointLoaderSimple.ckpt_name", "models[0]"
};

// Every model file `workflow` references, once per folder and name, in the order found (an
// embedded entry lends its url and hash to the loader input naming the same file). Loader inputs
// are read from the loader classes' inputs by name (API format) or by widget position (editor
// format, including subgraph definitions; muted and bypassed nodes skipped); only values with a
// model file extension count (`taesd` or `pixel_space` do not). Unknown node classes count by
// input name (ckpt_name, lora_name, vae_name, unet_name, clip_name*, control_net_name, ...).
std::vector<ModelReference> model_references(const nlohmann::json& workflow, WorkflowFormat format);

// Class types and titles, for the display.
std::map<std::string, NodeInfo> node_infos(const nlohmann::json& prompt);

}  // namespace autopod::comfy
