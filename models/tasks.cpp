// Download tasks persisted under AUTOPOD_HOME, controlled from any process through a `control`
// field that the worker polls (no signals: the worker may run on another machine later).

#include <nlohmann/json.hpp>

#include "core/random.hpp"
#include "core/state_file.hpp"
#include "core/text.hpp"
#include "models/models.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

constexpr TaskState k_states[] = {TaskState::queued, TaskState::resolving, TaskState::running,
                                  TaskState::paused, TaskState::verifying, TaskState::done,
                                  TaskState::failed, TaskState::cancelled};

TaskState state_from(const std::string& s) {
  for (auto st : k_states)
    if (s == to_string(st)) return st;
  return TaskState::failed;
}

json to_json(const Task& t) {
  return {{"id", t.id}, {"source", t.entry.source.text}, {"folder", t.entry.folder},
          {"name", t.entry.name}, {"sha256", t.entry.sha256}, {"file", t.entry.file},
          {"revision", t.entry.source.revision}, {"destination", t.destination.string()},
          {"state", to_string(t.state)}, {"bytes", t.bytes}, {"total", t.total},
          {"bytes_per_sec", t.bytes_per_sec}, {"eta_secs", t.eta_secs},
          {"connections", t.connections}, {"priority", t.priority}, {"error", t.error},
          {"control", t.control}, {"updated_at", t.updated_at},
          {"pod", t.pod},         {"job", t.job},         {"kind", t.kind},
          {"files", t.files},     {"files_done", t.files_done}};
}

core::Result<Task> from_json(const json& j) {
  Task t;
  t.id = j.value("id", "");
  t.kind = j.value("kind", "");
  if (t.kind.empty()) {  // a scan has no source
    TRY_ASSIGN(t.entry.source, parse_source(j.value("source", "")));
  }
  if (auto rev = j.value("revision", ""); !rev.empty()) t.entry.source.revision = rev;
  t.entry.folder = j.value("folder", "");
  t.entry.name = j.value("name", "");
  t.entry.sha256 = j.value("sha256", "");
  t.entry.file = j.value("file", "");
  t.entry.where = "task " + t.id;
  t.destination = j.value("destination", "");
  t.state = state_from(j.value("state", ""));
  t.bytes = j.value("bytes", std::int64_t{0});
  t.total = j.value("total", std::int64_t{-1});
  t.bytes_per_sec = j.value("bytes_per_sec", 0.0);
  t.eta_secs = j.value("eta_secs", std::int64_t{-1});
  t.connections = j.value("connections", 0);
  t.priority = j.value("priority", 0);
  t.error = j.value("error", "");
  t.control = j.value("control", "");
  t.updated_at = j.value("updated_at", "");
  t.pod = j.value("pod", "");
  t.job = j.value("job", "");
  t.files = j.value("files", 0), t.files_done = j.value("files_done", 0);
  return t;
}

}  // namespace

const char* to_string(TaskState s) {
  switch (s) {
    case TaskState::queued: return "queued";
    case TaskState::resolving: return "resolving";
    case TaskState::running: return "running";
    case TaskState::paused: return "paused";
    case TaskState::verifying: return "verifying";
    case TaskState::done: return "done";
    case TaskState::failed: return "failed";
    case TaskState::cancelled: return "cancelled";
  }
  return "failed";
}

TaskStore::TaskStore(const core::Home& home) : m_path(home.tasks() / "tasks.json") {}

core::Result<Task> TaskStore::add(const ManifestEntry& entry, const std::filesystem::path& dest,
                                  int priority) {
  Task t;
  t.id = core::random_hex(8);
  t.entry = entry;
  t.destination = dest;
  t.priority = priority;
  t.updated_at = core::iso_time();
  TRY(put(t));
  return t;
}

core::Status TaskStore::put(const Task& task) {
  core::StateFile file(m_path);
  auto r = file.update([&](json& doc) -> core::Status {
    json next = to_json(task);
    // A pause or cancel asked by another process since this worker last read it is kept.
    bool active = task.state == TaskState::resolving || task.state == TaskState::running ||
                  task.state == TaskState::verifying;
    auto& slot = doc["tasks"][task.id];
    if (active && slot.is_object() && !slot.value("control", "").empty())
      next["control"] = slot["control"];
    slot = next;
    return {};
  });
  if (!r) return fail(r.error());
  return {};
}

core::Result<std::vector<Task>> TaskStore::list() const {
  TRY_ASSIGN(auto doc, core::StateFile(m_path).read());
  std::vector<Task> out;
  const json tasks = doc.contains("tasks") ? doc["tasks"] : json::object();
  for (auto it = tasks.begin(); it != tasks.end(); ++it) {
    const json& j = it.value();
    TRY_ASSIGN(auto t, from_json(j));
    out.push_back(std::move(t));
  }
  std::stable_sort(out.begin(), out.end(), [](const Task& a, const Task& b) { return a.priority > b.priority; });
  return out;
}

core::Result<Task> TaskStore::get(const std::string& id) const {
  TRY_ASSIGN(auto doc, core::StateFile(m_path).read());
  const json tasks = doc.contains("tasks") ? doc["tasks"] : json::object();
  if (!tasks.contains(id)) {
    std::string known;
    for (auto it = tasks.begin(); it != tasks.end(); ++it) known += (known.empty() ? "" : ", ") + it.key();
    return fail(ErrorCode::not_found, "no task " + id,
                known.empty() ? "there are no tasks" : "known tasks: " + known);
  }
  return from_json(tasks[id]);
}

core::Status TaskStore::request(const std::string& id, TaskControl control) {
  core::StateFile file(m_path);
  auto r = file.update([&](json& doc) -> core::Status {
    auto& tasks = doc["tasks"];
    if (!tasks.contains(id)) return fail(ErrorCode::not_found, "no task " + id, "list them with `autopod models tasks`");
    json& t = tasks[id];
    std::string state = t.value("state", "");
    bool active = state == "resolving" || state == "running" || state == "verifying";
    auto refuse = [&](const char* what) {
      return fail(ErrorCode::conflict, std::string("cannot ") + what + " task " + id + ": it is " + state);
    };
    switch (control) {
      case TaskControl::pause:
        if (!active && state != "queued") return refuse("pause");
        if (active) t["control"] = "pause";
        else t["state"] = "paused";
        break;
      case TaskControl::cancel:
        if (state == "done" || state == "cancelled") return refuse("cancel");
        if (active) t["control"] = "cancel";
        else t["state"] = "cancelled";
        break;
      case TaskControl::resume:
        if (state != "paused") return refuse("resume");
        t["state"] = "queued", t["control"] = "";
        break;
      case TaskControl::retry:
        if (state != "failed" && state != "cancelled") return refuse("retry");
        t["state"] = "queued", t["control"] = "", t["error"] = "";
        break;
    }
    t["updated_at"] = core::iso_time();
    return {};
  });
  if (!r) return fail(r.error());
  return {};
}

core::Status TaskStore::requeue_job(const std::string& job) {
  core::StateFile file(m_path);
  auto r = file.update([&](json& doc) -> core::Status {
    if (!doc.contains("tasks")) return {};
    for (auto& [id, t] : doc["tasks"].items()) {
      if (t.value("job", "") != job || t.value("state", "") == "done") continue;
      t["state"] = "queued", t["control"] = "", t["error"] = "", t["updated_at"] = core::iso_time();
    }
    return {};
  });
  if (!r) return fail(r.error());
  return {};
}

}  // namespace autopod::models
