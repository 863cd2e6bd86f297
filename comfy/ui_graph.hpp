#pragma once
// Internal to comfy/: the parts of the editor-format → API conversion (ui_to_api.cpp) that live in
// their own files: the widget layout of a node class (widget_values.cpp), what the editor does to
// widget values when it queues (widget_text.cpp) and legacy group nodes (group_nodes.cpp). The
// reference is the ComfyUI frontend's graphToPrompt; everything read from the workflow or from
// /object_info is untrusted, so a field that is missing or of another type never throws here.

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace autopod::comfy::ui {

using nlohmann::json;
using nlohmann::ordered_json;

inline constexpr const char* k_export_hint =
    "open the workflow in ComfyUI and save it in API format (Workflow > Export (API)), then run "
    "that file";

// A node id as the prompt keys it: 5 -> "5", "37:0" as is; "" for anything else.
std::string id_text(const json& id);

// One entry of a node's widgets_values, in the order the editor lays them out.
struct WidgetSlot {
  enum class Kind { value, control, upload };
  Kind kind = Kind::value;
  std::string name;        // the input it fills (Kind::value)
  const ordered_json* spec = nullptr;  // its /object_info spec (Kind::value)
};

// The widgets the editor makes for a node class `def` (one /object_info entry): each widget input
// of input.required then input.optional in input_order, or in declaration order when the server
// sends none, each followed by its seed control or upload button when it has one.
std::vector<WidgetSlot> widget_slots(const ordered_json& def);

// The value a widget has before the workflow sets it: the declared default, else what the editor
// falls back to (min or 0 for numbers, "" for strings, false, the first combo option).
json widget_default(const ordered_json& spec);

// Widget values by input name, in widget order: widgets_values (an array by position, or an
// object by name, as some custom nodes save) mapped onto widget_slots(def); widgets it does not
// set get their defaults.
std::vector<std::pair<std::string, json>> widget_values(const json& node, const ordered_json& def);

// LiteGraph's match of slot types: "*" and "" match anything, lists ("A,B") match any member,
// case aside.
bool types_match(std::string a, std::string b);

// The save nodes whose filename_prefix the editor fills (%date:...%, %node.widget%).
bool is_save_node(const std::string& type);

// Looks up the value of widget `widget` of the node that `node` names (its "Node name for S&R" or
// its title), for %node.widget% references.
using WidgetLookup = std::function<std::optional<json>(const std::string& node, const std::string& widget)>;

// `%date:FORMAT%` with `local_time` and `%NODE.WIDGET%` with `lookup` (characters not allowed in
// file names become _), as the editor does to save nodes' filename_prefix when it queues. Other
// and unresolvable references stay as written.
std::string replace_references(const std::string& value, const std::tm& local_time,
                               const WidgetLookup& lookup);

// The date format of %date:FORMAT%: yyyy, yy, M/MM, d/dd, h/hh (0-23), m/mm, s/ss; anything else
// is copied. As in the editor, dots end a format: %date:yyyy.MM.dd% gives the year only, and
// with a single dot the reference is read as %NODE.WIDGET%.
std::string format_date(const std::string& format, const std::tm& local_time);

// A dynamic prompt as the editor resolves it when it queues a widget marked dynamicPrompts:
// // and /* */ comments removed, each {a|b|c} replaced by one option picked with `pick(n)` (an
// index below n), nested braces resolved inside out, \{ \} \| kept as literal characters.
std::string resolve_dynamic_prompt(const std::string& text, const std::function<std::size_t(std::size_t)>& pick);

// Replaces each instance of a legacy group node (type "workflow>NAME" or "workflow/NAME", defined
// in extra.groupNodes) with its inner nodes, ids "ID:0", "ID:1", ..., wiring their links as the
// editor does. invalid_argument naming the node when its definition is missing or malformed.
core::Status expand_group_nodes(json& ui, const ordered_json& object_info);

}  // namespace autopod::comfy::ui
