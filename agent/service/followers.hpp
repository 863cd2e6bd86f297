#pragma once
// Internal to agent/service/: what Generations and Syncs share about following tasks: one thread
// per task (joined when it ends or at stop()), which tasks are being cancelled, a wait for a shared
// slot, and the two ways a followed task ends early (error, cancelled).

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/service/store.hpp"
#include "core/result.hpp"

namespace autopod::agent::service {

class Followers {
 public:
  Followers() = default;
  Followers(const Followers&) = delete;
  Followers& operator=(const Followers&) = delete;
  ~Followers();  // stop()

  // Runs `follow` on a thread of its own, unless `id` has one already or stop() was called.
  // Threads that ended are joined here.
  void start(const std::string& id, std::function<void()> follow);
  // Nothing is followed any longer: wakes every wait_to_take() and joins every thread.
  void stop();

  // Not cancelled and not stopped.
  bool following(const std::string& id) const;
  // cancel() was called for `id` (and has not been undone by its failure).
  bool cancelled(const std::string& id) const;

  // Waits until `take()` returns true (it runs under the lock, so it may take a shared slot) or
  // `id` is no longer followed. Whether it was taken.
  bool wait_to_take(const std::string& id, const std::function<bool()>& take);
  // Runs `change` under the same lock (giving a slot back), then wakes every wait_to_take().
  void changed(const std::function<void()>& change);

  // Ends `id` as cancelled: not_found, or conflict when it has already ended. Marks it cancelled
  // (so its follower stops), reads it again (what its follower recorded meanwhile) and runs
  // `stop_remote` on it (take back prompts, cancel the pod job); a failure un-marks it and is
  // returned. Then records the task `cancelled` and returns it.
  core::Result<Task> cancel(TaskStore& store,
                            const std::string& id,
                            const std::function<core::Status(const Task&)>& stop_remote);

 private:
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_stopping = false;
  std::map<std::string, std::thread> m_threads;
  std::vector<std::string> m_done;  // threads that ended, joined by the next start()
  std::set<std::string> m_cancelled;
};

// Records `error` on the task (status error: its first line as `message`, all of it with the hint
// as `details`), unless the task has ended already.
void fail_task(TaskStore& store, const std::string& id, const core::Error& error);

}  // namespace autopod::agent::service
