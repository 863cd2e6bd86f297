#include "agent/service/task.hpp"

#include <cmath>
#include <ctime>

namespace autopod::agent::service {

using nlohmann::json;

namespace {

constexpr const char* k_status_names[] = {"queued", "in-progress", "completed", "error", "cancelled"};

long long to_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

TimePoint from_ms(long long ms) { return TimePoint(std::chrono::milliseconds(ms)); }

json number_or_int(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return static_cast<long long>(v);
  return v;
}

}  // namespace

const char* to_string(TaskStatus status) { return k_status_names[static_cast<int>(status)]; }

std::optional<TaskStatus> parse_status(std::string_view text) {
  for (int i = 0; i < 5; ++i)
    if (text == k_status_names[i]) return static_cast<TaskStatus>(i);
  return std::nullopt;
}

bool is_final(TaskStatus status) {
  return status == TaskStatus::completed || status == TaskStatus::error ||
         status == TaskStatus::cancelled;
}

std::string iso_ms(TimePoint t) {
  auto ms = to_ms(t);
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

json api_view(const Task& t) {
  json progress = {{"percentage", t.progress.percentage},
                   {"currentStep", t.progress.current_step},
                   {"currentValue", number_or_int(t.progress.current_value)},
                   {"maxValue", number_or_int(t.progress.max_value)},
                   {"etaSeconds", t.progress.eta_seconds ? json(std::lround(*t.progress.eta_seconds)) : json()}};
  if (t.progress.bytes) progress["bytes"] = *t.progress.bytes;
  if (t.progress.total_bytes) progress["total"] = *t.progress.total_bytes;
  if (t.progress.bytes_per_second) progress["bytesPerSecond"] = std::lround(*t.progress.bytes_per_second);
  return {{"taskId", t.id},
          {"kind", t.kind},
          {"status", to_string(t.status)},
          {"progress", progress},
          {"result", t.result},
          {"error", t.error},
          {"metadata", t.metadata},
          {"createdAt", iso_ms(t.created_at)},
          {"timestamp", iso_ms(t.updated_at)}};
}

json to_record(const Task& t) {
  json r = api_view(t);
  r["version"] = 1;
  r["createdAtMs"] = to_ms(t.created_at);
  r["updatedAtMs"] = to_ms(t.updated_at);
  r["request"] = t.request;
  r["pod"] = t.pod;
  r["webhook"] = t.webhook;
  r["workflowName"] = t.workflow_name;
  r["clientId"] = t.client_id;
  r["promptIds"] = t.prompt_ids;
  r["prompt"] = t.prompt;
  r["sync"] = t.sync;
  return r;
}

core::Result<Task> from_record(const json& r) {
  try {
    Task t;
    t.id = r.at("taskId").get<std::string>();
    t.kind = r.at("kind").get<std::string>();
    auto status = parse_status(r.at("status").get<std::string>());
    if (!status) return core::fail(core::ErrorCode::protocol, "unknown status in task " + t.id);
    t.status = *status;
    const json& p = r.at("progress");
    t.progress.percentage = p.value("percentage", 0);
    t.progress.current_step = p.value("currentStep", "");
    t.progress.current_value = p.value("currentValue", 0.0);
    t.progress.max_value = p.value("maxValue", 0.0);
    if (p.contains("etaSeconds") && p["etaSeconds"].is_number()) t.progress.eta_seconds = p["etaSeconds"].get<double>();
    if (p.contains("bytes") && p["bytes"].is_number()) t.progress.bytes = p["bytes"].get<std::int64_t>();
    if (p.contains("total") && p["total"].is_number()) t.progress.total_bytes = p["total"].get<std::int64_t>();
    if (p.contains("bytesPerSecond") && p["bytesPerSecond"].is_number())
      t.progress.bytes_per_second = p["bytesPerSecond"].get<double>();
    t.result = r.value("result", json());
    t.error = r.value("error", json());
    t.metadata = r.value("metadata", json());
    t.created_at = from_ms(r.at("createdAtMs").get<long long>());
    t.updated_at = from_ms(r.at("updatedAtMs").get<long long>());
    t.request = r.value("request", json::object());
    t.pod = r.value("pod", "");
    t.webhook = r.value("webhook", "");
    t.workflow_name = r.value("workflowName", "");
    t.client_id = r.value("clientId", "");
    t.prompt_ids = r.value("promptIds", std::vector<std::string>{});
    t.prompt = r.value("prompt", json());
    t.sync = r.value("sync", json());
    return t;
  } catch (const json::exception& e) {
    return core::fail(core::ErrorCode::protocol, std::string("not a task record: ") + e.what());
  }
}

}  // namespace autopod::agent::service
