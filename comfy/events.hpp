#pragma once
// ComfyUI's WebSocket messages (../shared/reference/comfyui-api.md §4) and what a run makes of
// them: the parsed event and the per-prompt state machine. The displays are in display.hpp.

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <string_view>

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

// partial: succeeded, but outputs whose branches failed validation were dropped at submission.
enum class Outcome { pending, running, success, error, interrupted, lost, partial };
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

  // When the run started executing, else when it was submitted: elapsed times count from here.
  std::chrono::steady_clock::time_point origin() const;
  // Overall fraction done, weighting every node to execute equally; cached nodes count as done.
  double fraction() const;
  const NodeInfo* node(const std::string& id) const;
};

// Applies one event to the run it belongs to. False when the event changes nothing.
bool apply(RunState& run, const Event& event, std::chrono::steady_clock::time_point now);

// "#3 KSampler", "#7 Positive (CLIPTextEncode)", "#9" when the node is unknown.
std::string node_label(const RunState& run, const std::string& id);

// "node #31 Canny raised _comfystub.StubUnavailable: ...\n  at: <last traceback line>", or
// "node #42 VAEDecodeTiled was interrupted"; empty when the run did not fail.
std::string describe_failure(const RunState& run);

}  // namespace autopod::comfy
