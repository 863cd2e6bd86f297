#include "comfy/workflow.hpp"

#include <algorithm>
#include <optional>
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

std::string id_text(const json& id) { return id.is_string() ? id.get<std::string>() : id.dump(); }

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

// --- UI to API ---------------------------------------------------------------------------------

namespace {

struct UiNode {
  std::string id;
  std::string type;
  int mode = 0;
  const json* raw = nullptr;
};

// What an input receives: a link to a real node's output, a literal (from a PrimitiveNode), or
// nothing (a muted source, or a bypassed one with no matching input).
struct Source {
  enum { none, link, literal } kind = none;
  std::string node;
  int slot = 0;
  json value;
};

bool ui_only(const std::string& type) {
  static const std::set<std::string> k = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute",
                                          "GetNode", "SetNode"};
  return k.count(type) > 0;
}

bool is_widget_type(const json& spec) {
  if (!spec.is_array() || spec.empty()) return false;
  const json& type = spec[0];
  if (type.is_array()) return true;  // a legacy combo
  if (!type.is_string()) return false;
  if (spec.size() > 1 && spec[1].is_object() && spec[1].value("forceInput", false)) return false;
  static const std::set<std::string> k = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"};
  return k.count(type.get<std::string>()) > 0;
}

class Converter {
 public:
  Converter(const json& ui, const json& info) : m_ui(ui), m_info(info) {}

  core::Result<json> run() {
    std::set<std::string> subgraphs;
    if (auto d = m_ui.find("definitions"); d != m_ui.end() && d->is_object())
      if (auto s = d->find("subgraphs"); s != d->end() && s->is_array())
        for (const auto& g : *s) subgraphs.insert(str(g, "id"));
    for (const auto& n : m_ui["nodes"]) {
      if (!n.is_object() || !n.contains("id") || !n.contains("type"))
        return fail(ErrorCode::invalid_argument, "workflow: a node in \"nodes\" has no id or type", k_export_hint);
      UiNode node{id_text(n["id"]), str(n, "type"), n.value("mode", 0), &n};
      if (subgraphs.count(node.type))
        return fail(ErrorCode::unsupported,
                    "workflow: node #" + node.id + " is a subgraph, which autopod cannot expand yet",
                    k_export_hint);
      if (node.type == "SetNode" && n.contains("widgets_values") && n["widgets_values"].is_array() &&
          !n["widgets_values"].empty())
        m_setters[id_text(n["widgets_values"][0])] = node.id;
      m_nodes[node.id] = node;
    }
    TRY(read_links());
    json prompt = json::object();
    for (const auto& [id, node] : m_nodes) {
      if (ui_only(node.type) || node.mode == 2 || node.mode == 4) continue;
      if (!m_info.contains(node.type))
        return fail(ErrorCode::invalid_argument,
                    "workflow: node #" + id + " is of type " + node.type +
                        ", which this ComfyUI does not have (a custom node that is not installed?)",
                    "install the custom node on the pod, or " + std::string(k_export_hint));
      TRY_ASSIGN(auto inputs, convert_inputs(node));
      std::string title = str(*node.raw, "title");
      if (title.empty()) title = m_info[node.type].value("display_name", node.type);
      prompt[id] = {{"inputs", inputs}, {"class_type", node.type}, {"_meta", {{"title", title}}}};
    }
    if (prompt.empty())
      return fail(ErrorCode::invalid_argument, "workflow: no nodes left to run after removing muted and UI-only nodes");
    return prompt;
  }

 private:
  core::Status read_links() {
    auto l = m_ui.find("links");
    if (l == m_ui.end() || !l->is_array()) return {};  // schema 1 may leave links out
    for (const auto& link : *l) {
      if (link.is_array() && link.size() >= 5) {  // [id, src, src_slot, dst, dst_slot, type]
        m_links[link[0].get<long long>()] = {id_text(link[1]), link[2].get<int>()};
      } else if (link.is_object()) {  // {id, origin_id, origin_slot, target_id, target_slot, type}
        m_links[link.value("id", -1LL)] = {id_text(link["origin_id"]), link.value("origin_slot", 0)};
      } else {
        return fail(ErrorCode::invalid_argument, "workflow: a link is neither [id, from, slot, to, slot, type] nor an object",
                    k_export_hint);
      }
    }
    return {};
  }

  // The input entry `name` of a UI node, if it has a link.
  std::optional<long long> input_link(const UiNode& node, const std::string& name) const {
    auto ins = node.raw->find("inputs");
    if (ins == node.raw->end() || !ins->is_array()) return std::nullopt;
    for (const auto& in : *ins)
      if (str(in, "name") == name && in.contains("link") && in["link"].is_number())
        return in["link"].get<long long>();
    return std::nullopt;
  }

  Source resolve_link(long long link_id, int depth = 0) const {
    auto it = m_links.find(link_id);
    if (it == m_links.end() || depth > 64) return {};
    return resolve(it->second.first, it->second.second, depth + 1);
  }

  // Follows pass-through nodes back to the node that really produces the value.
  Source resolve(const std::string& id, int slot, int depth) const {
    auto it = m_nodes.find(id);
    if (it == m_nodes.end()) return {};
    const UiNode& node = it->second;
    const json& raw = *node.raw;
    if (node.mode == 2) return {};  // muted: its outputs are gone
    if (node.type == "PrimitiveNode") {
      Source s;
      if (raw.contains("widgets_values") && raw["widgets_values"].is_array() && !raw["widgets_values"].empty()) {
        s.kind = Source::literal;
        s.value = raw["widgets_values"][0];
      }
      return s;
    }
    if (node.type == "Reroute") {
      auto ins = raw.find("inputs");
      if (ins != raw.end() && ins->is_array() && !ins->empty() && (*ins)[0].contains("link") &&
          (*ins)[0]["link"].is_number())
        return resolve_link((*ins)[0]["link"].get<long long>(), depth);
      return {};
    }
    if (node.type == "GetNode") {
      std::string name = raw.contains("widgets_values") && raw["widgets_values"].is_array() &&
                                 !raw["widgets_values"].empty()
                             ? id_text(raw["widgets_values"][0])
                             : "";
      auto setter = m_setters.find(name);
      if (setter == m_setters.end()) return {};
      const UiNode& set = m_nodes.at(setter->second);
      auto ins = set.raw->find("inputs");
      if (ins != set.raw->end() && ins->is_array() && !ins->empty() && (*ins)[0]["link"].is_number())
        return resolve_link((*ins)[0]["link"].get<long long>(), depth);
      return {};
    }
    if (node.mode == 4) {  // bypassed: the first input of the output's type passes through
      std::string type;
      if (auto outs = raw.find("outputs"); outs != raw.end() && outs->is_array() &&
                                           slot < static_cast<int>(outs->size()))
        type = str((*outs)[static_cast<std::size_t>(slot)], "type");
      if (auto ins = raw.find("inputs"); ins != raw.end() && ins->is_array())
        for (const auto& in : *ins)
          if (str(in, "type") == type && in.contains("link") && in["link"].is_number())
            return resolve_link(in["link"].get<long long>(), depth);
      return {};
    }
    Source s;
    s.kind = Source::link;
    s.node = id;
    s.slot = slot;
    return s;
  }

  core::Result<json> convert_inputs(const UiNode& node) {
    const json& info = m_info[node.type];
    const json& raw = *node.raw;
    json widgets = raw.contains("widgets_values") ? raw["widgets_values"] : json::array();
    std::size_t wi = 0;
    json inputs = json::object();
    for (const char* section : {"required", "optional"}) {
      auto specs = info.contains("input") ? info["input"].value(section, json::object()) : json::object();
      std::vector<std::string> order;
      if (info.contains("input_order") && info["input_order"].contains(section))
        for (const auto& n : info["input_order"][section]) order.push_back(n.get<std::string>());
      else
        for (const auto& [n, spec] : specs.items()) order.push_back(n);
      for (const auto& name : order) {
        if (!specs.contains(name)) continue;
        const json& spec = specs[name];
        std::optional<json> value;
        if (is_widget_type(spec)) {
          if (widgets.is_object()) {
            if (widgets.contains(name)) value = widgets[name];
          } else if (widgets.is_array() && wi < widgets.size()) {
            value = widgets[wi++];
            json opts = spec.size() > 1 && spec[1].is_object() ? spec[1] : json::object();
            // The editor stores extra values after some widgets: the control_after_generate
            // mode after seed-like ints, and the upload button's name after upload combos.
            static const std::set<std::string> k_control = {"fixed", "increment", "decrement", "randomize"};
            bool seed_like = spec[0] == "INT" && (opts.value("control_after_generate", false) ||
                                                   name == "seed" || name == "noise_seed");
            if (seed_like && wi < widgets.size() && widgets[wi].is_string() &&
                k_control.count(widgets[wi].get<std::string>()))
              ++wi;
            bool upload = opts.value("image_upload", false) || opts.value("video_upload", false) ||
                          opts.value("audio_upload", false);
            if (upload && wi < widgets.size() && widgets[wi].is_string() &&
                (widgets[wi] == "image" || widgets[wi] == "video" || widgets[wi] == "audio"))
              ++wi;
          }
        }
        // A link (a widget converted to an input, or a plain input) wins over the widget value.
        if (auto link = input_link(node, name)) {
          Source s = resolve_link(*link);
          if (s.kind == Source::link) value = json::array({s.node, s.slot});
          else if (s.kind == Source::literal) value = s.value;
          else value.reset();
        }
        if (value) inputs[name] = *value;
      }
    }
    return inputs;
  }

  const json& m_ui;
  const json& m_info;
  std::map<std::string, UiNode> m_nodes;
  std::map<long long, std::pair<std::string, int>> m_links;
  std::map<std::string, std::string> m_setters;  // SetNode name -> node id
};

}  // namespace

core::Result<json> ui_to_api(const json& ui, const json& object_info) {
  try {
    return Converter(ui, object_info).run();
  } catch (const json::exception& e) {
    return fail(ErrorCode::invalid_argument, std::string("workflow: unexpected editor-format shape: ") + e.what(),
                k_export_hint);
  }
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
