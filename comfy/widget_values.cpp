// The widgets the editor makes for a node class and how widgets_values fills them.

#include <cctype>
#include <set>

#include "comfy/ui_graph.hpp"

namespace autopod::comfy::ui {

namespace {

const ordered_json& k_null() {
  static const ordered_json n;
  return n;
}

const ordered_json& field(const ordered_json& j, const char* key) {
  if (!j.is_object()) return k_null();
  auto it = j.find(key);
  return it == j.end() ? k_null() : *it;
}

const ordered_json& options_of(const ordered_json& spec) {
  return spec.is_array() && spec.size() > 1 && spec[1].is_object() ? spec[1] : k_null();
}

bool flag(const ordered_json& options, const char* key) {
  const auto& v = field(options, key);
  return v.is_boolean() && v.get<bool>();
}

std::string type_of(const ordered_json& spec) {
  if (!spec.is_array() || spec.empty()) return "";
  if (spec[0].is_array()) return "COMBO";  // the legacy combo: [[options...], {...}]
  return spec[0].is_string() ? spec[0].get<std::string>() : "";
}

bool is_widget(const ordered_json& spec) {
  static const std::set<std::string> k_types = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"};
  return k_types.count(type_of(spec)) > 0 && !flag(options_of(spec), "forceInput");
}

// Servers before control_after_generate existed got the control from the input's name.
bool has_control(const std::string& name, const ordered_json& spec) {
  const auto& v = field(options_of(spec), "control_after_generate");
  if (!v.is_null()) return v.is_boolean() ? v.get<bool>() : true;
  return type_of(spec) == "INT" && (name == "seed" || name == "noise_seed");
}

bool has_upload(const ordered_json& spec) {
  const auto& options = options_of(spec);
  return flag(options, "image_upload") || flag(options, "video_upload") || flag(options, "audio_upload");
}

// The input names of one section, in input_order when it is a list of names, else as declared.
std::vector<std::string> section_order(const ordered_json& def, const char* section) {
  std::vector<std::string> names;
  const auto& specs = field(field(def, "input"), section);
  const auto& order = field(field(def, "input_order"), section);
  if (order.is_array()) {
    for (const auto& n : order)
      if (n.is_string() && specs.is_object() && specs.contains(n.get<std::string>()))
        names.push_back(n.get<std::string>());
  } else if (specs.is_object()) {
    for (const auto& [n, spec] : specs.items()) names.push_back(n);
  }
  return names;
}

bool is_control_value(const json& v) {
  static const std::set<std::string> k = {"fixed", "increment", "decrement", "randomize"};
  // 2023 editors stored a boolean here ("randomize" or not).
  return v.is_boolean() || (v.is_string() && k.count(v.get<std::string>()) > 0);
}

}  // namespace

bool types_match(std::string a, std::string b) {
  if (a.empty() || a == "*" || b.empty() || b == "*" || a == b) return true;
  for (auto* s : {&a, &b})
    for (char& c : *s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto split = [](const std::string& s) {
    std::vector<std::string> parts;
    std::size_t at = 0;
    for (auto comma = s.find(','); ; comma = s.find(',', at)) {
      parts.push_back(s.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
      if (comma == std::string::npos) return parts;
      at = comma + 1;
    }
  };
  for (const auto& x : split(a))
    for (const auto& y : split(b))
      if (x == y) return true;
  return false;
}

std::vector<WidgetSlot> widget_slots(const ordered_json& def) {
  std::vector<WidgetSlot> slots;
  for (const char* section : {"required", "optional"}) {
    const auto& specs = field(field(def, "input"), section);
    for (const auto& name : section_order(def, section)) {
      const auto& spec = specs[name];
      if (!is_widget(spec)) continue;
      slots.push_back({WidgetSlot::Kind::value, name, &spec});
      if (has_control(name, spec)) slots.push_back({WidgetSlot::Kind::control, name, nullptr});
      if (has_upload(spec)) slots.push_back({WidgetSlot::Kind::upload, name, nullptr});
    }
  }
  return slots;
}

json widget_default(const ordered_json& spec) {
  const auto& options = options_of(spec);
  if (const auto& d = field(options, "default"); !d.is_null()) return json(d);
  std::string type = type_of(spec);
  if (type == "INT" || type == "FLOAT") {
    const auto& min = field(options, "min");
    return min.is_number() ? json(min) : json(0);
  }
  if (type == "STRING") return "";
  if (type == "BOOLEAN") return false;
  if (type == "COMBO") {
    const auto& values = spec[0].is_array() ? spec[0] : field(options, "options");
    if (values.is_array() && !values.empty()) return json(values[0]);
  }
  return nullptr;
}

std::vector<std::pair<std::string, json>> widget_values(const json& node, const ordered_json& def) {
  std::vector<std::pair<std::string, json>> out;
  auto saved = node.is_object() && node.contains("widgets_values") ? node["widgets_values"] : json();
  std::size_t next = 0;  // position in an array of saved values
  for (const auto& slot : widget_slots(def)) {
    bool have = saved.is_array() && next < saved.size();
    switch (slot.kind) {
      case WidgetSlot::Kind::value: {
        json value = widget_default(*slot.spec);
        if (saved.is_object() && saved.contains(slot.name) && !saved[slot.name].is_null())
          value = saved[slot.name];
        if (have && !saved[next].is_null()) value = saved[next];
        if (have) ++next;
        out.emplace_back(slot.name, std::move(value));
        break;
      }
      // Workflows saved before the control or the upload button existed do not have their value.
      case WidgetSlot::Kind::control:
        if (have && is_control_value(saved[next])) ++next;
        break;
      case WidgetSlot::Kind::upload:
        if (have && (saved[next].is_null() || saved[next] == "image" || saved[next] == "video" ||
                     saved[next] == "audio" || saved[next] == "choose file to upload"))
          ++next;
        break;
    }
  }
  return out;
}

}  // namespace autopod::comfy::ui
