#include "comfy/workflow.hpp"

#include <algorithm>
#include <set>

#include "comfy/json_fields.hpp"
#include "core/fs.hpp"

namespace autopod::comfy {

using core::ErrorCode;
using core::fail;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* k_export_hint =
    "open the workflow in ComfyUI and save it in API format (Workflow > Export (API)), then run "
    "that file";

using fields::str;

bool is_api(const json& j) {
  if (!j.is_object() || j.empty()) return false;
  return std::any_of(j.begin(), j.end(), [](const json& v) { return v.is_object() && v.contains("class_type"); });
}

}  // namespace

core::Result<json> load_json_file(const fs::path& path) {
  TRY_ASSIGN(auto text, core::read_file(path));
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    std::size_t at = std::min<std::size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    auto line = 1 + std::count(text.begin(), text.begin() + static_cast<long>(at), '\n');
    auto nl = text.rfind('\n', at == 0 ? 0 : at - 1);
    auto column = nl == std::string::npos ? at + 1 : at - nl;
    std::string what = e.what();
    if (auto p = what.find("syntax error"); p != std::string::npos) what = what.substr(p);
    return fail(ErrorCode::invalid_argument,
                path.string() + ":" + std::to_string(line) + ":" + std::to_string(column) +
                    ": not valid JSON: " + what,
                "a workflow is the .json file ComfyUI saves or exports");
  }
}

core::Result<WorkflowFormat> detect_format(json& w, const std::string& where) {
  if (w.is_object() && w.contains("nodes") && w["nodes"].is_array()) return WorkflowFormat::ui;
  if (w.is_object() && w.contains("prompt") && is_api(w["prompt"])) {
    json inner = w["prompt"];
    w = std::move(inner);
  }
  if (is_api(w)) {
    for (const auto& [id, node] : w.items())
      if (!node.is_object() || !node.contains("class_type") || !node["class_type"].is_string())
        return fail(ErrorCode::invalid_argument,
                    where + ": node \"" + id + "\" has no class_type",
                    "every node of an API-format workflow is {\"class_type\": ..., \"inputs\": {...}}");
    return WorkflowFormat::api;
  }
  return fail(ErrorCode::invalid_argument,
              where + ": not a ComfyUI workflow (neither API format, an object of nodes with "
                      "class_type, nor the editor's format, with a \"nodes\" array)",
              k_export_hint);
}

// --- edits -------------------------------------------------------------------------------------

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// -?DIGITS
bool is_int(std::string_view s) { return all_digits(s.substr(!s.empty() && s[0] == '-' ? 1 : 0)); }

// -?(D+.D*|.D+|D+)([eE][-+]?D+)? with at least a dot or an exponent
bool is_float(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  auto e = s.find_first_of("eE");
  std::string_view mantissa = s.substr(0, e), exponent = e == std::string_view::npos ? "" : s.substr(e + 1);
  if (e != std::string_view::npos) {
    if (!exponent.empty() && (exponent[0] == '+' || exponent[0] == '-')) exponent.remove_prefix(1);
    if (!all_digits(exponent)) return false;
  }
  auto dot = mantissa.find('.');
  if (dot == std::string_view::npos) return e != std::string_view::npos && all_digits(mantissa);
  std::string_view whole = mantissa.substr(0, dot), frac = mantissa.substr(dot + 1);
  if (whole.empty() && frac.empty()) return false;
  return (whole.empty() || all_digits(whole)) && (frac.empty() || all_digits(frac));
}

json typed_value(const std::string& text) {
  if (is_int(text)) {
    try {
      if (text[0] == '-') return std::stoll(text);
      return std::stoull(text);
    } catch (const std::out_of_range&) {
    }
  }
  if (is_float(text)) return std::stod(text);
  if (text == "true" || text == "false") return text == "true";
  if (!text.empty() && (text[0] == '{' || text[0] == '[' || text[0] == '"' || text == "null")) {
    json j = json::parse(text, nullptr, false);
    if (!j.is_discarded()) return j;
  }
  return text;
}

}  // namespace

core::Status apply_set(json& prompt, const std::string& assignment) {
  auto eq = assignment.find('=');
  auto dot = eq == std::string::npos ? std::string::npos : assignment.rfind('.', eq);
  if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 == eq)
    return fail(ErrorCode::invalid_argument, "--set " + assignment + ": expected NODE.INPUT=VALUE",
                "e.g. --set 3.seed=42 or --set \"KSampler.steps=30\" (NODE is an id or a title)");
  std::string node = assignment.substr(0, dot), input = assignment.substr(dot + 1, eq - dot - 1);
  std::vector<std::string> matches;
  if (prompt.contains(node)) {
    matches.push_back(node);
  } else {
    for (const auto& [id, n] : prompt.items())
      if (n.contains("_meta") && str(n["_meta"], "title") == node) matches.push_back(id);
  }
  if (matches.empty()) {
    std::string known;
    for (const auto& [id, n] : prompt.items()) {
      std::string title = n.contains("_meta") ? str(n["_meta"], "title") : "";
      known += (known.empty() ? "" : ", ") + id + (title.empty() ? "" : " (" + title + ")");
    }
    return fail(ErrorCode::invalid_argument, "--set " + assignment + ": no node with id or title \"" + node + "\"",
                "nodes in this workflow: " + known);
  }
  if (matches.size() > 1) {
    std::string ids;
    for (const auto& m : matches) ids += (ids.empty() ? "" : ", ") + m;
    return fail(ErrorCode::invalid_argument,
                "--set " + assignment + ": the title \"" + node + "\" names several nodes (" + ids + ")",
                "use the node id instead, e.g. --set " + matches[0] + "." + input + "=...");
  }
  json& inputs = prompt[matches[0]]["inputs"];
  if (!inputs.is_object() || !inputs.contains(input)) {
    std::string names;
    if (inputs.is_object())
      for (const auto& [k, v] : inputs.items()) names += (names.empty() ? "" : ", ") + k;
    return fail(ErrorCode::invalid_argument,
                "--set " + assignment + ": node " + matches[0] + " (" + str(prompt[matches[0]], "class_type") +
                    ") has no input \"" + input + "\"",
                "its inputs are: " + names);
  }
  inputs[input] = typed_value(assignment.substr(eq + 1));
  return {};
}

std::vector<std::pair<std::string, std::string>> seed_inputs(const json& prompt) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [id, node] : prompt.items()) {
    auto ins = node.find("inputs");
    if (ins == node.end() || !ins->is_object()) continue;
    for (const char* name : {"seed", "noise_seed"})
      if (auto v = ins->find(name); v != ins->end() && v->is_number_integer()) out.emplace_back(id, name);
  }
  return out;
}

void set_seeds(json& prompt, std::uint64_t seed) {
  for (const auto& [id, name] : seed_inputs(prompt)) prompt[id]["inputs"][name] = seed;
}

core::Result<std::vector<UploadSlot>> upload_slots(const json& prompt, const std::vector<fs::path>& inputs,
                                                   const fs::path& base_dir) {
  static const std::set<std::string> k_names = {"image", "video", "audio", "file"};
  std::vector<std::pair<std::string, std::string>> slots;  // Load* nodes' file inputs
  std::vector<std::string> ids;
  for (const auto& [id, node] : prompt.items()) ids.push_back(id);
  std::sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;  // numeric order for numeric ids
  });
  for (const auto& id : ids) {
    const json& node = prompt[id];
    if (str(node, "class_type").rfind("Load", 0) != 0 || !node.contains("inputs")) continue;
    for (const auto& [name, v] : node["inputs"].items())
      if (k_names.count(name) && !v.is_array()) slots.emplace_back(id, name);
  }
  if (inputs.size() > slots.size())
    return fail(ErrorCode::invalid_argument,
                std::to_string(inputs.size()) + " --input files but the workflow has " +
                    std::to_string(slots.size()) + " image/video/audio loading input(s)",
                "--input fills the inputs of Load* nodes (LoadImage, ...) in node id order");
  std::vector<UploadSlot> out;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    const auto& [id, name] = slots[i];
    if (i < inputs.size()) {
      if (!fs::is_regular_file(inputs[i]))
        return fail(ErrorCode::invalid_argument, "--input " + inputs[i].string() + ": no such file");
      out.push_back({id, name, inputs[i]});
      continue;
    }
    const json& v = prompt[id]["inputs"][name];
    if (!v.is_string() || v.get<std::string>().empty()) continue;
    fs::path p = v.get<std::string>();
    std::error_code ec;
    for (const fs::path& candidate : {p.is_absolute() ? p : base_dir / p, p})
      if (fs::is_regular_file(candidate, ec)) {
        out.push_back({id, name, candidate});
        break;
      }
  }
  return out;
}

std::map<std::string, NodeInfo> node_infos(const json& prompt) {
  std::map<std::string, NodeInfo> out;
  for (const auto& [id, node] : prompt.items()) {
    NodeInfo info{str(node, "class_type"), {}};
    if (auto m = node.find("_meta"); m != node.end() && m->is_object()) info.title = str(*m, "title");
    if (info.title.empty()) info.title = info.class_type;
    out[id] = info;
  }
  return out;
}

}  // namespace autopod::comfy
