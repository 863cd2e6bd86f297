#pragma once
// Internal to agent/maintain/: maintain's files under AUTOPOD_HOME: its state (maintain.json),
// autopod's activity records (activity.json), the run lock and the action log.

#include <map>
#include <optional>
#include <string>

#include "agent/maintain/decide.hpp"
#include "core/home.hpp"
#include "core/result.hpp"

namespace autopod::agent::maintain {

// Pod id -> memory. A missing file is an empty map.
core::Result<std::map<std::string, PodMemory>> load_memory(const core::Home& home);
// Replaces the stored pods with `pods` (pods no longer listed are dropped by the caller), under
// the file's lock. An entry a pod command changed since `loaded` was read (record_pod_change: a
// stop or start during this run) keeps that command's running-time count, which reaches the
// command's moment where this run's stops at its look; the rest of the entry is `pods`'s.
core::Status save_memory(const core::Home& home,
                         const std::map<std::string, PodMemory>& loaded,
                         const std::map<std::string, PodMemory>& pods);

// Pod id -> when an autopod command last used its ComfyUI.
core::Result<std::map<std::string, Epoch>> load_activity(const core::Home& home);

// Appends "TIME LINE" to logs/maintain.log.
core::Status append_log(const core::Home& home, WallTime when, const std::string& line);

// A non-blocking exclusive lock on Home::maintain_lock(), held while the object lives.
class RunLock {
 public:
  // nullopt when another process holds it; io error when the file cannot be opened.
  static core::Result<std::optional<RunLock>> try_acquire(const core::Home& home);
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&&) = delete;
  ~RunLock();

 private:
  explicit RunLock(int fd) : m_fd(fd) {}
  int m_fd = -1;
};

}  // namespace autopod::agent::maintain
