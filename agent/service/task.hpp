#pragma once
// Internal to agent/service/: a task as the service keeps it, and the two JSON shapes made from
// it: the API view (GET /v1/tasks/{id}, every event's data, every webhook's body) and the record
// kept in AUTOPOD_HOME/tasks/<id>.json, which adds what a restart needs.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace autopod::agent::service {

enum class TaskStatus { queued, in_progress, completed, error, cancelled };
const char* to_string(TaskStatus status);  // "queued", "in-progress", ...
std::optional<TaskStatus> parse_status(std::string_view text);
bool is_final(TaskStatus status);

struct Progress {
  int percentage = 0;
  std::string current_step;
  double current_value = 0, max_value = 0;
  std::optional<double> eta_seconds;
  // Model syncs only (shown as bytes, total, bytesPerSecond): bytes on disk, of this many.
  std::optional<std::int64_t> bytes, total_bytes;
  std::optional<double> bytes_per_second;
  bool operator==(const Progress&) const = default;
};

using TimePoint = std::chrono::system_clock::time_point;

struct Task {
  std::string id;
  std::string kind = "generation";
  TaskStatus status = TaskStatus::queued;
  Progress progress;
  nlohmann::json result;    // null until completed
  nlohmann::json error;     // {message, details, nodeId, nodeType} when status is error
  nlohmann::json metadata;  // the client's, returned as given
  TimePoint created_at{}, updated_at{};

  // Not shown: what the run and a restart need.
  nlohmann::json request;      // the POST body as accepted
  std::string pod;             // empty: the agent's default pod
  std::string webhook;         // empty: none
  std::string workflow_name;   // for a saved workflow
  std::string client_id;       // the WebSocket client id its prompts were submitted with
  std::vector<std::string> prompt_ids;
  nlohmann::json prompt;       // API format as prepared, to follow its prompts after a restart
  nlohmann::json sync;         // model syncs: {job, present, missing} once started (a restart re-attaches to job)
};

// "2026-11-25T12:34:56.789Z".
std::string iso_ms(TimePoint t);

// The API view, field for field as the README documents it.
nlohmann::json api_view(const Task& task);

nlohmann::json to_record(const Task& task);
// protocol error naming what is missing when the record is not one of ours.
core::Result<Task> from_record(const nlohmann::json& record);

}  // namespace autopod::agent::service
