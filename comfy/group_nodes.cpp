// Legacy group nodes (ComfyUI frontend before subgraphs): a node of type "workflow>NAME" (or
// "workflow/NAME" before frontend 1.2.63) stands for the nodes saved in extra.groupNodes[NAME].
// The editor queues the inner nodes as "ID:0", "ID:1", ...; this file rewrites the workflow the
// same way, following the frontend's GroupNodeConfig: which inner inputs and outputs the group
// exposes, and in which order its widgets_values list the inner widgets.

#include <map>
#include <set>

#include "comfy/ui_graph.hpp"

namespace autopod::comfy::ui {

using core::ErrorCode;
using core::fail;

namespace {

const json& get(const json& j, const char* key) {
  static const json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}

const json& at(const json& j, std::size_t i) {
  static const json null;
  return j.is_array() && i < j.size() ? j[i] : null;
}

std::string str(const json& j) { return j.is_string() ? j.get<std::string>() : ""; }

std::optional<long long> number(const json& j) {
  if (j.is_number()) return j.get<long long>();
  return std::nullopt;
}

std::string group_name(const std::string& type) {
  for (const char* prefix : {"workflow>", "workflow/"})
    if (type.rfind(prefix, 0) == 0) return type.substr(9);
  return "";
}

bool is_widget_type(const ordered_json& spec) {
  if (!spec.is_array() || spec.empty()) return false;
  if (spec[0].is_array()) return true;
  static const std::set<std::string> k = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"};
  return spec[0].is_string() && k.count(spec[0].get<std::string>()) > 0;
}

bool with_control(const std::string& name, const ordered_json& spec) {
  if (name == "seed" || name == "noise_seed") return true;
  return spec.is_array() && spec.size() > 1 && spec[1].is_object() &&
         spec[1].value("control_after_generate", false) == true;
}

// A group's layout: which inner (node, slot) each of its inputs, outputs and widgets stands for.
struct Layout {
  struct Widget {
    std::size_t node;
    std::string input;
    bool control;
  };
  std::vector<std::pair<std::size_t, std::size_t>> inputs;   // group input -> inner node, slot
  std::vector<std::pair<std::size_t, std::size_t>> outputs;  // group output -> inner node, slot
  std::vector<Widget> widgets;
  std::map<std::pair<std::size_t, std::size_t>, const json*> links_to;  // inner target -> link
  std::set<std::pair<std::size_t, std::size_t>> linked_from, external;  // inner outputs
};

class LayoutBuilder {
 public:
  LayoutBuilder(const json& data, const ordered_json& info) : m_data(data), m_info(info) {}

  Layout build() {
    for (const auto& l : get(m_data, "links")) {
      auto src = number(at(l, 0)), src_slot = number(at(l, 1)), dst = number(at(l, 2)), dst_slot = number(at(l, 3));
      if (!src || !src_slot || !dst || !dst_slot) continue;  // from outside the group
      m_layout.links_to[{*dst, *dst_slot}] = &l;
      m_layout.linked_from.insert({*src, *src_slot});
    }
    for (const auto& e : get(m_data, "external"))
      if (auto node = number(at(e, 0)), slot = number(at(e, 1)); node && slot) m_layout.external.insert({*node, *slot});
    const json& nodes = get(m_data, "nodes");
    std::vector<std::function<void()>> converted;  // the editor adds these after all nodes
    for (std::size_t i = 0; nodes.is_array() && i < nodes.size(); ++i) {
      ordered_json def = def_of(i, nodes[i]);
      if (def.is_null()) continue;
      add_inputs(i, nodes[i], def, converted);
      add_outputs(i, def);
    }
    for (auto& add : converted) add();
    return m_layout;
  }

 private:
  bool linked_from(std::size_t node) const {
    auto it = m_layout.linked_from.lower_bound({node, 0});
    return it != m_layout.linked_from.end() && it->first == node;
  }

  bool linked_to(std::size_t node) const {
    auto it = m_layout.links_to.lower_bound({node, 0});
    return it != m_layout.links_to.end() && it->first.first == node;
  }

  // The class of inner node i, as the editor sees it inside a group.
  ordered_json def_of(std::size_t i, const json& node) const {
    std::string type = str(get(node, "type"));
    if (auto d = m_info.find(type); d != m_info.end() && d->is_object()) return *d;
    std::string link_type;
    for (const auto& l : get(m_data, "links"))
      if (number(at(l, 0)) == static_cast<long long>(i) || number(at(l, 2)) == static_cast<long long>(i))
        if (link_type.empty()) link_type = str(at(l, 5));
    if (type == "PrimitiveNode" && linked_from(i))
      return {{"input", {{"required", {{"value", {link_type, {{"control_after_generate", true}}}}}}}}, {"output", {link_type}}};
    if (type == "Reroute" && !(linked_to(i) && linked_from(i) && !m_layout.external.count({i, 0}))) {
      std::string t = link_type.empty() ? "*" : link_type;
      return {{"input", {{"required", {{t, {t, {{"forceInput", true}}}}}}}}, {"output", {t}}};
    }
    return nullptr;  // used inside the group only, or not a node the editor can group
  }

  std::string renamed(std::size_t node, const std::string& input) const {
    const json& name = get(get(get(get(get(m_data, "config"), std::to_string(node).c_str()), "input"), input.c_str()), "name");
    return name.is_string() ? name.get<std::string>() : input;
  }

  bool hidden(std::size_t node, const char* kind, const std::string& name) const {
    const json& c = get(get(get(get(m_data, "config"), std::to_string(node).c_str()), kind), name.c_str());
    return get(c, "visible") == false;
  }

  void add_inputs(std::size_t i, const json& node, const ordered_json& def, std::vector<std::function<void()>>& converted) {
    std::vector<std::string> slots;
    std::map<std::size_t, std::string> widget_inputs;  // converted widgets by their input index
    for (const char* section : {"required", "optional"}) {
      const auto& specs = def.contains("input") && def["input"].is_object() && def["input"].contains(section)
                              ? def["input"][section] : ordered_json();
      if (!specs.is_object()) continue;
      for (const auto& [name, spec] : specs.items()) {
        if (!is_widget_type(spec)) {
          slots.push_back(name);
          continue;
        }
        if (auto index = converted_index(node, name)) widget_inputs[*index] = name;
        else if (saved_with(node, def, name)) m_layout.widgets.push_back({i, name, with_control(name, spec)});
      }
    }
    for (std::size_t s = 0; s < slots.size(); ++s)
      if (!m_layout.links_to.count({i, s}) && !hidden(i, "input", slots[s])) m_layout.inputs.push_back({i, s});
    converted.push_back([this, i, widget_inputs, n = slots.size()] {
      std::size_t j = 0;
      for (const auto& [index, name] : widget_inputs)
        if (!m_layout.links_to.count({i, n + j++})) {
          m_layout.widgets.push_back({i, name, name == "seed" || name == "noise_seed"});
          m_layout.inputs.push_back({i, index});
        }
    });
  }

  // Whether the node had widget `name` when the group was saved: a class that gained widgets
  // since (DualCFGGuider's style) has more widgets than the node saved values for, and the group's
  // widgets_values does not list the new ones.
  static bool saved_with(const json& node, const ordered_json& def, const std::string& name) {
    const json& saved = get(node, "widgets_values");
    if (!saved.is_array()) return true;
    auto slots = widget_slots(def);
    for (std::size_t k = 0; k < slots.size(); ++k)
      if (slots[k].kind == WidgetSlot::Kind::value && slots[k].name == name) return k < saved.size();
    return true;
  }

  // Newer editors save a widget's input slot with the node; the group then lists it last.
  static std::optional<std::size_t> converted_index(const json& node, const std::string& name) {
    const json& ins = get(node, "inputs");
    for (std::size_t k = 0; ins.is_array() && k < ins.size(); ++k)
      if (str(get(ins[k], "name")) == name && str(get(get(ins[k], "widget"), "name")) == name) return k;
    return std::nullopt;
  }

  void add_outputs(std::size_t i, const ordered_json& def) {
    const auto& outs = def.contains("output") ? def["output"] : ordered_json();
    for (std::size_t o = 0; outs.is_array() && o < outs.size(); ++o) {
      bool internal = m_layout.linked_from.count({i, o}) && !m_layout.external.count({i, o});
      const json& visible = get(get(get(get(get(m_data, "config"), std::to_string(i).c_str()), "output"),
                                    std::to_string(o).c_str()), "visible");
      if (visible.is_boolean() ? visible.get<bool>() : !internal) m_layout.outputs.push_back({i, o});
    }
  }

  const json& m_data;
  const ordered_json& m_info;
  Layout m_layout;
};

}  // namespace

namespace {

class Expander {
 public:
  Expander(json& ui, const ordered_json& info) : m_ui(ui), m_info(info) {
    for (const auto& l : m_ui["links"])
      if (auto id = number(l.is_array() ? at(l, 0) : get(l, "id"))) m_next_link = std::max(m_next_link, *id + 1);
  }

  // Replaces instance `node` of group `data` (its id `id`) by the inner nodes.
  void expand(const json& node, const std::string& id, const json& data) {
    Layout layout = LayoutBuilder(data, m_info).build();
    const json& inner = get(data, "nodes");
    auto values = distribute(layout, get(node, "widgets_values"));
    long long mode = number(get(node, "mode")).value_or(0);
    for (std::size_t i = 0; i < inner.size(); ++i) {
      json n = inner[i].is_object() ? inner[i] : json::object();
      n["id"] = id + ":" + std::to_string(i);
      if (mode == 2 || mode == 4) n["mode"] = mode;
      if (values.count(i)) n["widgets_values"] = str(get(n, "type")) == "PrimitiveNode" && values[i].contains("value")
                                                     ? json::array({values[i]["value"]}) : values[i];
      wire_inputs(n, i, id, layout, node);
      m_nodes.push_back(std::move(n));
    }
    reroute_outputs(id, layout);
  }

  std::vector<json> take_nodes() { return std::move(m_nodes); }

 private:
  // The group's widgets_values shared out to its inner nodes by input name.
  static std::map<std::size_t, json> distribute(const Layout& layout, const json& saved) {
    std::map<std::size_t, json> out;
    std::size_t next = 0;
    for (const auto& w : layout.widgets) {
      if (saved.is_array() && next < saved.size()) {
        if (!saved[next].is_null()) out[w.node][w.input] = saved[next];
        ++next;
      }
      bool control = saved.is_array() && next < saved.size() &&
                     (saved[next].is_boolean() || saved[next] == "fixed" || saved[next] == "increment" ||
                      saved[next] == "decrement" || saved[next] == "randomize");
      if (w.control && control) ++next;
    }
    return out;
  }

  void wire_inputs(json& n, std::size_t i, const std::string& id, const Layout& layout, const json& instance) {
    if (!n["inputs"].is_array()) n["inputs"] = json::array();
    json& ins = n["inputs"];
    for (std::size_t s = 0; s < ins.size(); ++s)
      if (ins[s].is_object()) ins[s]["link"] = nullptr;
    for (const auto& [target, link] : layout.links_to) {
      if (target.first != i || target.second >= ins.size() || !ins[target.second].is_object()) continue;
      long long lid = m_next_link++;
      m_ui["links"].push_back({lid, id + ":" + std::to_string(number(at(*link, 0)).value_or(0)),
                               number(at(*link, 1)).value_or(0), n["id"], target.second, at(*link, 5)});
      ins[target.second]["link"] = lid;
    }
    std::size_t socket = 0;  // the instance's own inputs without a widget are the group's inputs in order
    for (const auto& in : get(instance, "inputs")) {
      if (!get(in, "widget").is_null()) continue;
      if (socket < layout.inputs.size()) {
        auto [node, slot] = layout.inputs[socket];
        if (node == i && slot < ins.size() && ins[slot].is_object()) ins[slot]["link"] = get(in, "link");
      }
      ++socket;
    }
  }

  // Links from the instance's outputs start at the inner node each output stands for.
  void reroute_outputs(const std::string& id, const Layout& layout) {
    for (auto& l : m_ui["links"]) {
      bool array = l.is_array();
      json& origin = array ? l[1] : l["origin_id"];
      json& slot = array ? l[2] : l["origin_slot"];
      auto out = number(slot);
      if (id_text(origin) != id || !out || *out < 0 || static_cast<std::size_t>(*out) >= layout.outputs.size()) continue;
      auto [node, inner_slot] = layout.outputs[static_cast<std::size_t>(*out)];
      origin = id + ":" + std::to_string(node);
      slot = inner_slot;
    }
  }

  json& m_ui;
  const ordered_json& m_info;
  long long m_next_link = 1;
  std::vector<json> m_nodes;
};

}  // namespace

core::Status expand_group_nodes(json& ui, const ordered_json& object_info) {
  const json& groups = get(get(ui, "extra"), "groupNodes");
  if (!ui.is_object() || !ui["nodes"].is_array()) return {};
  if (!ui["links"].is_array()) ui["links"] = json::array();
  // Inner nodes may be group nodes themselves: expand until none is left.
  for (int round = 0; round < 8; ++round) {
    Expander expander(ui, object_info);
    json kept = json::array();
    bool found = false;
    for (const auto& node : ui["nodes"]) {
      std::string type = str(get(node, "type")), name = group_name(type);
      if (name.empty() || object_info.contains(type)) {
        kept.push_back(node);
        continue;
      }
      const json& data = get(groups, name.c_str());
      std::string id = id_text(get(node, "id"));
      if (!data.is_object() || !get(data, "nodes").is_array())
        return fail(ErrorCode::invalid_argument,
                    "workflow: node #" + id + " is the group node " + type + ", but extra.groupNodes has no \"" +
                        name + "\" with its nodes",
                    k_export_hint);
      expander.expand(node, id, data);
      found = true;
    }
    if (!found) return {};
    for (auto& n : expander.take_nodes()) kept.push_back(std::move(n));
    ui["nodes"] = std::move(kept);
  }
  return fail(ErrorCode::invalid_argument, "workflow: group nodes nested more than 8 deep", k_export_hint);
}

}  // namespace autopod::comfy::ui
