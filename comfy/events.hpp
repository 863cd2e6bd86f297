#pragma once
// ComfyUI's WebSocket messages (../shared/reference/comfyui-api.md §4) and what a run makes of
// them: the parsed event, the per-prompt state machine, and the three displays (a live line on
// a terminal, one plain line per event otherwise, JSON lines for scripts).

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace autopod::comfy {

enum class EventType {
  status,
  execution_start,
  execution_cached,
  executing,  // node empty + `done`: the prompt has ended (sent after its history is stored)
  progress,
  progress_state,
  executed,
  execution_success,
  execution_error,
  execution_interrupted,
  preview,  // binary type 1 or 4
  text,     // binary type 3
  other,    // feature_flags, logs, custom node messages: ignored
};

const char* to_string(EventType type);

struct Event {
  EventType type = EventType::other;
  std::string prompt_id;   // empty when the frame carries none
  std::string node;        // display id for executing/progress/executed/errors
  bool done = false;       // executing with node null
  double value = 0, max = 0;  // progress
  int queue_remaining = -1;   // status
  std::string text;           // binary text frames; the type for `other`
  nlohmann::json data;        // the message's data (cached nodes, outputs, error details)
};

// A JSON text frame; protocol error when it is not {"type": ..., "data": {...}}.
core::Result<Event> parse_text_frame(std::string_view frame);
// A binary frame: 4-byte big-endian type, then its payload (§4.5).
core::Result<Event> parse_binary_frame(std::string_view frame);

enum class Outcome { pending, running, success, error, interrupted, lost };
const char* to_string(Outcome outcome);

struct NodeInfo {
  std::string class_type;
  std::string title;  // _meta.title, or the class type
};

// One submitted prompt, as its events tell it.
struct RunState {
  std::string prompt_id;
  int index = 1, count = 1;  // run i of N (--count)
  std::map<std::string, NodeInfo> nodes;
  Outcome outcome = Outcome::pending;
  bool ended = false;  // `executing {node: null}` seen, or the history told us
  std::set<std::string> done_nodes;  // cached or finished
  std::string current;               // the executing node
  double value = 0, max = 0;         // its step progress
  nlohmann::json error;              // execution_error / execution_interrupted data
  std::chrono::steady_clock::time_point submitted{}, started{}, outcome_at{};

  // Overall fraction done, weighting every node to execute equally; cached nodes count as done.
  double fraction() const;
  const NodeInfo* node(const std::string& id) const;
};

// Applies one event to the run it belongs to. False when the event changes nothing.
bool apply(RunState& run, const Event& event, std::chrono::steady_clock::time_point now);

// "node #31 Canny raised _comfystub.StubUnavailable: ...\n  at: <last traceback line>", or
// "node #42 VAEDecodeTiled was interrupted"; empty when the run did not fail.
std::string describe_failure(const RunState& run);

// What the user sees. Lines go to `out` (stderr, or stdout for --json).
class Display {
 public:
  virtual ~Display() = default;
  virtual void event(const RunState& run, const Event& event) = 0;
  virtual void message(const std::string& line) = 0;  // notes: reconnects, saved files
  virtual void saved(const RunState& run, const std::string& path) = 0;
  virtual void finished(const RunState& run) = 0;
  virtual void tick() {}  // redraw the live line (elapsed time) when nothing arrives
};

enum class DisplayKind { live, plain, json };
std::unique_ptr<Display> make_display(DisplayKind kind, std::FILE* out);

// "1:05", "12:00:03".
std::string format_duration(std::chrono::steady_clock::duration d);

}  // namespace autopod::comfy
