#pragma once
// Internal to models/: a file's turn to download under a models root, shared by every process
// and pod job on that root. The protocol and format are those of `class Slot` in
// models/pod/autopod_paths.py, so a local sync and a pod job on the same root share the limit:
// one JSON entry per waiting or running file in <root>/.autopod/slots ({"owner": {host, pid,
// start_ticks, heartbeat}, "priority", "t", "running"}), decided under flock(<dir>/.lock); the
// entries of dead owners (transfer_state.hpp's owner_alive) are dropped.

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "core/result.hpp"

namespace autopod::models {

class DownloadSlot {
 public:
  // Writes a waiting entry `key` (a file name without ".json", unique under the root) with
  // `priority` (higher first) and `queued_at` (unix seconds; earlier first among equals).
  // io when the directory cannot be made or written.
  static core::Result<DownloadSlot> enter(const std::filesystem::path& root, const std::string& key,
                                          int priority, int limit, double queued_at);
  DownloadSlot(DownloadSlot&& other) noexcept;
  DownloadSlot& operator=(DownloadSlot&&) = delete;
  ~DownloadSlot();  // removes the entry: the turn passes on

  // Waits until fewer than `limit` entries run and this one is among the first waiting ones
  // (priority, then queued_at, then key): true, marked running. False as soon as `give_up()`
  // holds (polled every `poll`, outside the lock); the entry is then removed. io when the lock
  // or the entry cannot be written.
  core::Result<bool> wait(const std::function<bool()>& give_up,
                          std::chrono::milliseconds poll = std::chrono::milliseconds(100));

 private:
  DownloadSlot() = default;
  core::Result<bool> try_take();  // under the lock; io when the entry cannot be rewritten
  std::filesystem::path m_dir;
  std::string m_name;  // key + ".json"
  int m_priority = 0;
  int m_limit = 1;
  double m_queued_at = 0;
  bool m_held = false;
};

}  // namespace autopod::models
