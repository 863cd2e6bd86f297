// Editor-format (UI) workflows to API format, as the ComfyUI frontend's graphToPrompt does.

#include <optional>
#include <set>

#include "comfy/json_fields.hpp"
#include "comfy/workflow.hpp"

namespace autopod::comfy {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

namespace {

const char* k_export_hint =
    "open the workflow in ComfyUI and save it in API format (Workflow > Export (API)), then run "
    "that file";

using fields::str;

std::string id_text(const json& id) { return id.is_string() ? id.get<std::string>() : id.dump(); }

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

}  // namespace autopod::comfy
