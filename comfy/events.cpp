#include "comfy/events.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>

#include "comfy/json_fields.hpp"

namespace autopod::comfy {

using core::ErrorCode;
using core::fail;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* to_string(EventType type) {
  switch (type) {
    case EventType::status: return "status";
    case EventType::execution_start: return "execution_start";
    case EventType::execution_cached: return "execution_cached";
    case EventType::executing: return "executing";
    case EventType::progress: return "progress";
    case EventType::progress_state: return "progress_state";
    case EventType::executed: return "executed";
    case EventType::execution_success: return "execution_success";
    case EventType::execution_error: return "execution_error";
    case EventType::execution_interrupted: return "execution_interrupted";
    case EventType::preview: return "preview";
    case EventType::text: return "text";
    case EventType::other: return "other";
  }
  return "other";
}

const char* to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::pending: return "pending";
    case Outcome::running: return "running";
    case Outcome::success: return "success";
    case Outcome::error: return "error";
    case Outcome::interrupted: return "interrupted";
    case Outcome::lost: return "lost";
    case Outcome::partial: return "partial";
  }
  return "pending";
}

namespace {

using fields::num;
using fields::str;

std::uint32_t be32(std::string_view s, std::size_t at) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

EventType type_of(std::string_view t) {
  static const std::map<std::string_view, EventType> k_types = {
      {"status", EventType::status},
      {"execution_start", EventType::execution_start},
      {"execution_cached", EventType::execution_cached},
      {"executing", EventType::executing},
      {"progress", EventType::progress},
      {"progress_state", EventType::progress_state},
      {"executed", EventType::executed},
      {"execution_success", EventType::execution_success},
      {"execution_error", EventType::execution_error},
      {"execution_interrupted", EventType::execution_interrupted}};
  auto it = k_types.find(t);
  return it == k_types.end() ? EventType::other : it->second;
}

}  // namespace

core::Result<Event> parse_text_frame(std::string_view frame) {
  json msg = json::parse(frame, nullptr, false);
  if (msg.is_discarded() || !msg.is_object() || !msg.contains("type") || !msg["type"].is_string())
    return fail(ErrorCode::protocol, "comfyui sent a WebSocket frame that is not a {type, data} message: " +
                                         std::string(frame.substr(0, 120)));
  Event e;
  const std::string& type = msg["type"].get_ref<const std::string&>();
  e.type = type_of(type);
  auto d = msg.find("data");
  if (d == msg.end() || !d->is_object()) {
    e.type = EventType::other;
    e.text = type;
    return e;
  }
  json& data = *d;
  e.prompt_id = str(data, "prompt_id");
  switch (e.type) {
    case EventType::status:
      if (auto s = data.find("status"); s != data.end() && s->is_object())
        if (auto x = s->find("exec_info"); x != s->end() && x->is_object())
          e.queue_remaining = static_cast<int>(num(*x, "queue_remaining"));
      break;
    case EventType::executing: {
      auto n = data.find("node");
      if (n == data.end() || n->is_null()) {
        e.done = true;
      } else {
        e.node = str(data, "display_node");
        if (e.node.empty()) e.node = n->is_string() ? n->get<std::string>() : n->dump();
      }
      break;
    }
    case EventType::progress:
      e.value = num(data, "value");
      e.max = num(data, "max");
      e.node = str(data, "node");
      break;
    case EventType::executed:
      e.node = str(data, "display_node");
      if (e.node.empty()) e.node = str(data, "node");
      break;
    case EventType::execution_error:
    case EventType::execution_interrupted:
      e.node = str(data, "node_id");
      break;
    case EventType::other:
      e.text = type;
      break;
    default:
      break;
  }
  e.data = std::move(data);
  return e;
}

core::Result<Event> parse_binary_frame(std::string_view frame) {
  if (frame.size() < 4) return fail(ErrorCode::protocol, "comfyui sent a binary frame shorter than its type");
  Event e;
  std::uint32_t type = be32(frame, 0);
  if (type == 1) {  // [format][image]
    e.type = EventType::preview;
    e.value = static_cast<double>(frame.size() >= 8 ? frame.size() - 8 : 0);
  } else if (type == 3) {  // [len][node id][text]
    if (frame.size() < 8 || be32(frame, 4) > frame.size() - 8)
      return fail(ErrorCode::protocol, "comfyui sent a malformed text frame");
    std::uint32_t n = be32(frame, 4);
    e.type = EventType::text;
    e.node = std::string(frame.substr(8, n));
    e.text = std::string(frame.substr(8 + n));
  } else if (type == 4) {  // [len][json metadata][image]
    if (frame.size() < 8 || be32(frame, 4) > frame.size() - 8)
      return fail(ErrorCode::protocol, "comfyui sent a malformed preview frame");
    std::uint32_t n = be32(frame, 4);
    e.type = EventType::preview;
    json meta = json::parse(frame.substr(8, n), nullptr, false);
    if (meta.is_object()) {
      e.prompt_id = str(meta, "prompt_id");
      e.node = str(meta, "display_node_id");
    }
    e.value = static_cast<double>(frame.size() - 8 - n);
  } else {
    e.type = EventType::other;
    e.text = "binary " + std::to_string(type);
  }
  return e;
}

double RunState::fraction() const {
  if (outcome == Outcome::success) return 1.0;
  if (nodes.empty()) return 0.0;
  double done = static_cast<double>(done_nodes.size());
  if (!current.empty() && !done_nodes.count(current) && max > 0) done += std::clamp(value / max, 0.0, 1.0);
  return std::clamp(done / static_cast<double>(nodes.size()), 0.0, 1.0);
}

const NodeInfo* RunState::node(const std::string& id) const {
  auto it = nodes.find(id);
  return it == nodes.end() ? nullptr : &it->second;
}

bool apply(RunState& run, const Event& e, Clock::time_point now) {
  switch (e.type) {
    case EventType::execution_start:
      run.outcome = Outcome::running;
      run.started = now;
      return true;
    case EventType::execution_cached:
      if (auto n = e.data.find("nodes"); n != e.data.end() && n->is_array())
        for (const auto& id : *n)
          if (id.is_string() && run.nodes.count(id.get<std::string>())) run.done_nodes.insert(id.get<std::string>());
      return true;
    case EventType::executing:
      if (e.done) {
        run.ended = true;
        if (!run.current.empty() && run.outcome == Outcome::success) run.done_nodes.insert(run.current);
        run.current.clear();
        return true;
      }
      if (run.outcome == Outcome::pending) run.outcome = Outcome::running;
      if (!run.current.empty() && run.current != e.node) run.done_nodes.insert(run.current);
      run.current = e.node;
      run.value = run.max = 0;
      return true;
    case EventType::progress:
      if (!e.node.empty() && e.node != run.current) {
        if (!run.current.empty()) run.done_nodes.insert(run.current);
        run.current = e.node;
      }
      run.value = e.value;
      run.max = e.max;
      return true;
    case EventType::progress_state: {
      bool changed = false;
      if (auto n = e.data.find("nodes"); n != e.data.end() && n->is_object())
        for (const auto& [id, st] : n->items())
          if (st.is_object() && str(st, "state") == "finished" && run.nodes.count(id))
            changed |= run.done_nodes.insert(id).second;
      return changed;
    }
    case EventType::executed:
      if (run.nodes.count(e.node)) run.done_nodes.insert(e.node);
      return true;
    case EventType::execution_success:
      run.outcome = Outcome::success;
      run.outcome_at = now;
      for (const auto& [id, info] : run.nodes) run.done_nodes.insert(id);
      return true;
    case EventType::execution_error:
      run.outcome = Outcome::error;
      run.outcome_at = now;
      run.error = e.data;
      return true;
    case EventType::execution_interrupted:
      run.outcome = Outcome::interrupted;
      run.outcome_at = now;
      run.error = e.data;
      return true;
    default:
      return false;
  }
}

std::string node_label(const RunState& run, const std::string& id) {
  const NodeInfo* n = run.node(id);
  if (!n) return "#" + id;
  if (n->title.empty() || n->title == n->class_type) return "#" + id + " " + n->class_type;
  return "#" + id + " " + n->title + " (" + n->class_type + ")";
}

Clock::time_point RunState::origin() const {
  return started != Clock::time_point{} ? started : submitted;
}

namespace {

// "Value at most 20 tokens": the last line of a traceback is where it raised.
std::string last_line(const json& traceback) {
  if (!traceback.is_array() || traceback.empty() || !traceback.back().is_string()) return {};
  std::string t = traceback.back().get<std::string>();
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  auto nl = t.rfind('\n');
  std::string line = nl == std::string::npos ? t : t.substr(nl + 1);
  auto first = line.find_first_not_of(' ');
  return first == std::string::npos ? line : line.substr(first);
}

}  // namespace

std::string describe_failure(const RunState& run) {
  if (run.error.is_null()) return {};
  const json& e = run.error;
  std::string message = str(e, "exception_message");
  while (!message.empty() && message.back() == '\n') message.pop_back();
  std::string s = "node " + node_label(run, str(e, "node_id"));
  if (!str(e, "node_type").empty() && !run.node(str(e, "node_id"))) s += " (" + str(e, "node_type") + ")";
  if (run.outcome == Outcome::interrupted) return s + " was interrupted";
  s += " raised " + str(e, "exception_type") + ": " + message;
  if (auto tb = e.find("traceback"); tb != e.end()) {
    std::string where = last_line(*tb);
    if (!where.empty()) s += "\n  at: " + where;
  }
  return s;
}

}  // namespace autopod::comfy
