// maintain.json, activity.json, maintain.lock and logs/maintain.log.

#include "agent/maintain/memory.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/fs.hpp"
#include "core/state_file.hpp"
#include "core/text.hpp"

namespace autopod::agent::maintain {

using core::ErrorCode;
using nlohmann::json;

core::Result<std::map<std::string, PodMemory>> load_memory(const core::Home& home) {
  TRY_ASSIGN(auto doc, core::StateFile(home.maintain_state()).read());
  std::map<std::string, PodMemory> pods;
  if (!doc.contains("pods") || !doc["pods"].is_object())
    return pods;
  try {
    for (const auto& [id, j] : doc["pods"].items())
      pods[id] = j.get<PodMemory>();
  } catch (const json::exception& e) {
    return core::fail(ErrorCode::protocol,
                      home.maintain_state().string() + ": unexpected shape: " + e.what(),
                      "remove the file: maintain starts its memory afresh");
  }
  return pods;
}

namespace {

// What record_pod_change wrote into `base`: the running-time count, up to the command's moment.
PodMemory with_command_count(PodMemory base, const PodMemory& command) {
  base.name = command.name;
  base.day = command.day;
  base.running_secs = command.running_secs;
  base.cost_per_hr = command.cost_per_hr;
  base.last_seen = command.last_seen;
  base.last_status = command.last_status;
  return base;
}

}  // namespace

core::Status save_memory(const core::Home& home,
                         const std::map<std::string, PodMemory>& loaded,
                         const std::map<std::string, PodMemory>& pods) {
  TRY(core::ensure_dir(home.root()));
  TRY(core::StateFile(home.maintain_state()).update([&](json& doc) -> core::Status {
    json out = json::object();
    for (const auto& [id, m] : pods)
      out[id] = m;
    if (doc.contains("pods") && doc["pods"].is_object()) {
      for (const auto& [id, j] : doc["pods"].items()) {
        PodMemory stored;
        try {
          stored = j.get<PodMemory>();
        } catch (const json::exception&) {
          continue;  // damaged: this run's entry replaces it
        }
        auto before = loaded.find(id);
        if (before != loaded.end() && json(before->second) == json(stored))
          continue;  // unchanged since this run read it
        auto ours = pods.find(id);
        out[id] = ours == pods.end() ? stored : with_command_count(ours->second, stored);
      }
    }
    doc["pods"] = out;
    return {};
  }));
  return {};
}

core::Result<std::map<std::string, Epoch>> load_activity(const core::Home& home) {
  TRY_ASSIGN(auto doc, core::StateFile(home.activity()).read());
  std::map<std::string, Epoch> out;
  if (!doc.contains("pods") || !doc["pods"].is_object())
    return out;
  for (const auto& [id, j] : doc["pods"].items())
    if (j.is_object() && j.contains("at") && j["at"].is_number_integer())
      out[id] = j["at"].get<Epoch>();
  return out;
}

core::Status record_activity(const core::Home& home, const std::string& pod_id, WallTime when) {
  TRY(core::ensure_dir(home.root()));
  Epoch t = to_epoch(when);
  TRY(core::StateFile(home.activity()).update([&](json& doc) -> core::Status {
    auto& entry = doc["pods"][pod_id];
    if (!entry.is_object() || entry.value("at", Epoch{0}) < t)
      entry = {{"at", t}, {"time", core::iso_time(when)}};
    return {};
  }));
  return {};
}

core::Status record_pod_change(const core::Home& home,
                               const providers::Pod& pod,
                               bool ran_until_now,
                               providers::PodStatus after,
                               WallTime when) {
  TRY(core::ensure_dir(home.root()));
  TRY(core::StateFile(home.maintain_state()).update([&](json& doc) -> core::Status {
    PodMemory memory;
    auto& entry = doc["pods"][pod.id];
    if (entry.is_object()) {
      try {
        memory = entry.get<PodMemory>();
      } catch (const json::exception&) {
        memory = PodMemory{};  // maintain rewrites a damaged entry on its next run too
      }
    }
    account_change(memory, pod, ran_until_now, after, when);
    entry = memory;
    return {};
  }));
  return {};
}

core::Status append_log(const core::Home& home, WallTime when, const std::string& line) {
  TRY(core::ensure_dir(home.logs()));
  std::ofstream out(home.maintain_log(), std::ios::app);
  out << core::iso_time(when) << " " << line << "\n";
  out.flush();
  if (!out)
    return core::fail(ErrorCode::io, "cannot append to " + home.maintain_log().string(),
                      "check the permissions of " + home.logs().string());
  return {};
}

core::Result<std::optional<RunLock>> RunLock::try_acquire(const core::Home& home) {
  TRY(core::ensure_dir(home.root()));
  int fd = ::open(home.maintain_lock().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return core::fail(ErrorCode::io,
                      "cannot open " + home.maintain_lock().string() + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      return std::optional<RunLock>();
    return core::fail(ErrorCode::io,
                      "cannot lock " + home.maintain_lock().string() + ": " + std::strerror(err));
  }
  return std::optional<RunLock>(RunLock(fd));
}

RunLock::RunLock(RunLock&& other) noexcept : m_fd(other.m_fd) {
  other.m_fd = -1;
}

RunLock::~RunLock() {
  if (m_fd >= 0)
    ::close(m_fd);
}

}  // namespace autopod::agent::maintain
