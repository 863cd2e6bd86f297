// Editor-format (UI) workflows to API format, as the ComfyUI frontend's graphToPrompt does:
// widget values first, then each input's link resolved through virtual (Reroute, PrimitiveNode,
// GetNode/SetNode) and bypassed nodes, then links to nodes left out (muted) dropped.

#include <random>
#include <set>

#include "comfy/ui_graph.hpp"
#include "comfy/workflow.hpp"
#include "core/fs.hpp"

namespace autopod::comfy {

using core::ErrorCode;
using core::fail;
using nlohmann::json;
using nlohmann::ordered_json;

namespace ui {

std::string id_text(const json& id) {
  if (id.is_string()) return id.get<std::string>();
  if (id.is_number_integer()) return id.dump();
  if (id.is_number_float()) {  // some editors wrote 5.0
    double d = id.get<double>();
    if (d == static_cast<double>(static_cast<long long>(d))) return std::to_string(static_cast<long long>(d));
  }
  return "";
}

}  // namespace ui

namespace {

using ui::k_export_hint;

enum Mode { k_always = 0, k_never = 2, k_bypass = 4 };

struct UiNode {
  std::string id;
  std::string type;
  int mode = k_always;
  const json* raw = nullptr;
  const ordered_json* def = nullptr;  // its /object_info entry; null for editor-only nodes
};

struct Link {
  std::string origin;
  int slot = 0;
};

// What an input receives: a node's output, a value (from a PrimitiveNode), or nothing.
struct Source {
  enum Kind { none, link, literal } kind = none;
  std::string node;
  int slot = 0;
  json value;
};

std::string text(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

const json& member(const json& j, const char* key) {
  static const json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}

std::optional<long long> integer(const json& j) {
  if (j.is_number_integer()) return j.get<long long>();
  if (j.is_number_float()) return static_cast<long long>(j.get<double>());
  return std::nullopt;
}

// Editor-only nodes: they never reach the server.
bool is_virtual(const std::string& type) {
  static const std::set<std::string> k = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute", "GetNode", "SetNode"};
  return k.count(type) > 0;
}

class Converter {
 public:
  Converter(const json& ui, const ordered_json& info, const ConvertOptions& options)
      : m_ui(ui), m_info(info), m_options(options), m_random(options.choice_seed) {}

  core::Result<json> run() {
    TRY(read_nodes());
    TRY(read_links());
    for (const auto& node : m_order)
      if (node->def) m_values[node->id] = values_with_primitives(*node);
    json prompt = json::object();
    for (const auto* node : m_order) {
      if (!node->def || node->mode == k_never || node->mode == k_bypass) continue;
      prompt[node->id] = {{"inputs", inputs_of(*node)}, {"class_type", node->type}, {"_meta", {{"title", title_of(*node)}}}};
    }
    // As the editor does: an input linked to a node that is not sent (muted) is left out.
    for (auto& [id, node] : prompt.items())
      for (auto it = node["inputs"].begin(); it != node["inputs"].end();) {
        bool dangling = it->is_array() && it->size() == 2 && (*it)[0].is_string() &&
                        !prompt.contains((*it)[0].get<std::string>());
        it = dangling ? node["inputs"].erase(it) : std::next(it);
      }
    if (prompt.empty())
      return fail(ErrorCode::invalid_argument, "workflow: no nodes left to run after removing muted and editor-only nodes",
                  "unmute (Ctrl+M) or un-bypass (Ctrl+B) the nodes to run in ComfyUI");
    return prompt;
  }

 private:
  core::Status read_nodes() {
    const json& nodes = member(m_ui, "nodes");
    if (!nodes.is_array())
      return fail(ErrorCode::invalid_argument, "workflow: \"nodes\" is not a list", k_export_hint);
    std::set<std::string> subgraphs;
    for (const auto& g : member(member(m_ui, "definitions"), "subgraphs"))
      if (!text(g, "id").empty()) subgraphs.insert(text(g, "id"));
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const json& n = nodes[i];
      if (n.is_null()) continue;
      std::string where = "workflow: nodes[" + std::to_string(i) + "]";
      if (!n.is_object()) return fail(ErrorCode::invalid_argument, where + " is not an object", k_export_hint);
      UiNode node{ui::id_text(member(n, "id")), text(n, "type"), static_cast<int>(integer(member(n, "mode")).value_or(0)), &n, nullptr};
      if (node.id.empty())
        return fail(ErrorCode::invalid_argument, where + " (" + (node.type.empty() ? "no type" : node.type) + ") has no id",
                    k_export_hint);
      if (node.type.empty())
        return fail(ErrorCode::invalid_argument, "workflow: node #" + node.id + " has no type", k_export_hint);
      if (subgraphs.count(node.type))
        return fail(ErrorCode::unsupported, "workflow: node #" + node.id + " is a subgraph, which autopod cannot expand yet",
                    k_export_hint);
      TRY(attach_def(node));
      if (node.type == "SetNode") m_setters[value_text(first_widget(n))] = node.id;
      auto [it, fresh] = m_nodes.emplace(node.id, node);
      if (!fresh)
        return fail(ErrorCode::invalid_argument, "workflow: two nodes have the id " + node.id, k_export_hint);
      m_order.push_back(&it->second);
    }
    return {};
  }

  core::Status attach_def(UiNode& node) {
    auto def = m_info.is_object() ? m_info.find(node.type) : m_info.end();
    if (def != m_info.end() && def->is_object()) {
      node.def = &*def;
      return {};
    }
    // Muted and bypassed nodes are never sent, so they may be of a class the server lacks.
    if (is_virtual(node.type) || node.mode == k_never || node.mode == k_bypass) return {};
    return fail(ErrorCode::invalid_argument,
                "workflow: node #" + node.id + " is of type " + node.type +
                    ", which this ComfyUI does not have (a custom node that is not installed?)",
                "install the custom node on the pod, or " + std::string(k_export_hint));
  }

  core::Status read_links() {
    const json& links = member(m_ui, "links");
    if (!links.is_array()) return {};  // schema 1 may leave links out
    for (std::size_t i = 0; i < links.size(); ++i) {
      const json& l = links[i];
      std::optional<long long> id, slot;
      std::string origin;
      if (l.is_array() && l.size() >= 5) {  // [id, from, from_slot, to, to_slot, type]
        id = integer(l[0]), origin = ui::id_text(l[1]), slot = integer(l[2]);
      } else if (l.is_object()) {  // {id, origin_id, origin_slot, target_id, target_slot, type}
        id = integer(member(l, "id")), origin = ui::id_text(member(l, "origin_id")), slot = integer(member(l, "origin_slot"));
      } else if (l.is_null()) {
        continue;
      }
      if (!id || !slot || origin.empty())
        return fail(ErrorCode::invalid_argument,
                    "workflow: links[" + std::to_string(i) + "] is neither [id, from, slot, to, slot, type] nor "
                    "{id, origin_id, origin_slot, ...}",
                    k_export_hint);
      m_links[*id] = {origin, static_cast<int>(*slot)};
    }
    return {};
  }

  static const json& first_widget(const json& node) {
    const json& w = member(node, "widgets_values");
    static const json null;
    return w.is_array() && !w.empty() ? w[0] : null;
  }

  static std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump(); }

  static const json& input_at(const UiNode& node, std::size_t i) {
    const json& ins = member(*node.raw, "inputs");
    static const json null;
    return ins.is_array() && i < ins.size() ? ins[i] : null;
  }

  static std::size_t input_count(const UiNode& node) {
    const json& ins = member(*node.raw, "inputs");
    return ins.is_array() ? ins.size() : 0;
  }

  // --- resolving links: ExecutableNodeDTO.resolveInput / resolveOutput in the frontend ---------

  Source resolve_link(const json& link_id, const std::string& type, int depth) const {
    auto id = integer(link_id);
    if (!id || depth > 1000) return {};  // unlinked, or a cycle through virtual nodes
    auto link = m_links.find(*id);
    if (link == m_links.end()) return {};
    return resolve_output(link->second.origin, link->second.slot, type, depth + 1);
  }

  Source resolve_input(const UiNode& node, std::size_t index, const std::string& type, int depth) const {
    const json& in = input_at(node, index);
    return resolve_link(member(in, "link"), type.empty() ? text(in, "type") : type, depth);
  }

  Source resolve_output(const std::string& id, int slot, const std::string& type, int depth) const {
    auto it = m_nodes.find(id);
    if (it == m_nodes.end()) return {};
    const UiNode& node = it->second;
    if (node.type == "PrimitiveNode") {  // its value is copied into the widgets it feeds
      const json& v = first_widget(*node.raw);
      return v.is_null() ? Source{} : Source{Source::literal, "", 0, v};
    }
    if (node.mode == k_bypass) {
      auto index = bypass_input(node, slot, type);
      return index ? resolve_input(node, *index, "", depth) : Source{};
    }
    if (node.type == "GetNode") {
      auto setter = m_setters.find(value_text(first_widget(*node.raw)));
      return setter == m_setters.end() ? Source{} : resolve_input(m_nodes.at(setter->second), 0, type, depth);
    }
    if (is_virtual(node.type))  // Reroute, SetNode: the input in the same slot passes through
      return slot >= 0 && static_cast<std::size_t>(slot) < input_count(node) ? resolve_input(node, slot, type, depth) : Source{};
    return {Source::link, id, slot, {}};
  }

  // The input a bypassed node passes to output `slot` for an input of `type`: the one in the same
  // slot when its type fits, else the first of exactly that type, else the first that fits.
  static std::optional<std::size_t> bypass_input(const UiNode& node, int slot, const std::string& type) {
    std::size_t n = input_count(node), s = slot < 0 ? 0 : static_cast<std::size_t>(slot);
    if (type.empty() || type == "*") return n > s ? s : 0;
    const json& outs = member(*node.raw, "outputs");
    std::string out_type = outs.is_array() && s < outs.size() ? text(outs[s], "type") : "";
    auto fits = [&](std::size_t i) {
      std::string t = text(input_at(node, i), "type");
      return ui::types_match(t, out_type) && ui::types_match(t, type);
    };
    if (s < n && fits(s)) return s;
    for (std::size_t i = 0; i < n; ++i)
      if (text(input_at(node, i), "type") == type) return i;
    for (std::size_t i = 0; i < n; ++i)
      if (fits(i)) return i;
    return std::nullopt;
  }

  // --- one node's inputs ------------------------------------------------------------------------

  // Widget values after PrimitiveNodes have copied theirs in (the editor does so before queueing).
  std::vector<std::pair<std::string, json>> values_with_primitives(const UiNode& node) const {
    auto values = ui::widget_values(*node.raw, *node.def);
    for (std::size_t i = 0; i < input_count(node); ++i) {
      const json& in = input_at(node, i);
      if (member(in, "link").is_null()) continue;
      Source s = resolve_input(node, i, "", 0);
      if (s.kind != Source::literal) continue;
      for (auto& [name, value] : values)
        if (name == text(in, "name")) value = s.value;
    }
    return values;
  }

  json inputs_of(const UiNode& node) {
    json inputs = json::object();
    for (const auto& [name, value] : m_values[node.id]) {
      json v = serialized(node, name, value);
      // Arrays are links in a prompt; the server unwraps a list value from {"__value__": [...]}.
      inputs[name] = v.is_array() ? json{{"__value__", v}} : v;
    }
    for (std::size_t i = 0; i < input_count(node); ++i) {
      const json& in = input_at(node, i);
      std::string name = text(in, "name");
      if (name.empty() || member(in, "link").is_null()) continue;
      Source s = resolve_input(node, i, "", 0);
      if (s.kind == Source::link) inputs[name] = json::array({s.node, s.slot});
      else if (s.kind == Source::literal && !inputs.contains(name)) inputs[name] = s.value;
    }
    return inputs;
  }

  // What a widget's value becomes when the editor queues it.
  json serialized(const UiNode& node, const std::string& name, const json& value) {
    if (!value.is_string()) return value;
    if (name == "filename_prefix" && ui::is_save_node(node.type))
      return ui::replace_references(value.get<std::string>(), local_time(),
                                    [this](const std::string& n, const std::string& w) { return lookup(n, w); });
    const ordered_json* spec = input_spec(*node.def, name);
    if (spec && spec->is_array() && spec->size() > 1 && (*spec)[1].is_object() &&
        (*spec)[1].value("dynamicPrompts", false) == true)
      return ui::resolve_dynamic_prompt(value.get<std::string>(), [this](std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(m_random);
      });
    return value;
  }

  // %NODE.WIDGET%: NODE is a "Node name for S&R" (by default the class, except on save nodes),
  // else a title; the first such node in the workflow.
  std::optional<json> lookup(const std::string& name, const std::string& widget) const {
    auto find = [&](auto&& matches) -> const UiNode* {
      for (const auto* n : m_order)
        if (matches(*n)) return n;
      return nullptr;
    };
    const UiNode* node = find([&](const UiNode& n) {
      const json& p = member(member(*n.raw, "properties"), "Node name for S&R");
      return p.is_string() ? p == name : !ui::is_save_node(n.type) && n.type == name;
    });
    if (!node) node = find([&](const UiNode& n) { return title_of(n) == name; });
    auto values = node ? m_values.find(node->id) : m_values.end();
    if (values == m_values.end()) return std::nullopt;
    for (const auto& [n, v] : values->second)
      if (n == widget) return v;
    return std::nullopt;
  }

  std::string title_of(const UiNode& node) const {
    std::string title = text(*node.raw, "title");
    if (title.empty() && node.def) {
      auto d = node.def->find("display_name");  // null on 105 of 0.3.64's classes
      if (d != node.def->end() && d->is_string()) title = d->get<std::string>();
    }
    return title.empty() ? node.type : title;
  }

  static const ordered_json* input_spec(const ordered_json& def, const std::string& name) {
    auto input = def.find("input");
    if (input == def.end() || !input->is_object()) return nullptr;
    for (const char* section : {"required", "optional"}) {
      auto specs = input->find(section);
      if (specs == input->end() || !specs->is_object()) continue;
      if (auto spec = specs->find(name); spec != specs->end()) return &*spec;
    }
    return nullptr;
  }

  const std::tm& local_time() {
    if (!m_time) {
      std::time_t t = std::chrono::system_clock::to_time_t(m_options.now);
      m_time.emplace();
      localtime_r(&t, &*m_time);
    }
    return *m_time;
  }

  const json& m_ui;
  const ordered_json& m_info;
  const ConvertOptions& m_options;
  std::mt19937_64 m_random;
  std::optional<std::tm> m_time;
  std::map<std::string, UiNode> m_nodes;
  std::vector<const UiNode*> m_order;  // as listed in the workflow
  std::map<long long, Link> m_links;
  std::map<std::string, std::string> m_setters;  // SetNode name -> node id
  std::map<std::string, std::vector<std::pair<std::string, json>>> m_values;  // widget values by node id
};

}  // namespace

core::Result<json> ui_to_api(const json& ui, const ordered_json& object_info, const ConvertOptions& options) {
  try {
    json expanded = ui;
    TRY(ui::expand_group_nodes(expanded, object_info));
    return Converter(expanded, object_info, options).run();
  } catch (const json::exception& e) {  // a bug: every field is checked before it is read
    return fail(ErrorCode::internal, std::string("workflow: unexpected editor-format shape: ") + e.what(),
                k_export_hint);
  }
}

core::Result<ordered_json> load_object_info(const std::filesystem::path& path) {
  TRY_ASSIGN(auto content, core::read_file(path));
  auto info = ordered_json::parse(content, nullptr, false);
  if (info.is_discarded() || !info.is_object())
    return fail(ErrorCode::invalid_argument, path.string() + ": not the JSON object GET /object_info returns",
                "save it from the pod's ComfyUI: curl http://127.0.0.1:8188/object_info > object_info.json");
  return info;
}

}  // namespace autopod::comfy
