#pragma once
// Internal to agent/service/: every task in memory, each persisted to AUTOPOD_HOME/tasks/<id>.json
// (atomic write, fsync), with its events for Server-Sent Events replay and its webhook attempts.
// Thread-safe. Subscribers and the listener are called under the store's lock, in event order:
// they must only queue the event (post it to a connection's strand, push it to a lane).

#include <atomic>
#include <condition_variable>
#include <thread>
#include <tuple>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/service/task.hpp"
#include "core/result.hpp"

namespace autopod::agent::service {

struct TaskEvent {
  std::uint64_t id = 0;  // per task, from 1, kept across restarts
  std::string name;      // progress, completed, error, cancelled
  std::string data;      // the task's API view when it happened, as JSON text
  bool final() const { return name != "progress"; }
};

using Subscriber = std::function<void(const TaskEvent&)>;
// Returns the event to send, "" when the task changed without one, nullptr when it did not change.
using Change = std::function<const char*(Task&)>;

class TaskStore {
 public:
  explicit TaskStore(std::filesystem::path dir);
  ~TaskStore();  // writes what is pending

  // Reads every record in the directory; unreadable ones are logged and skipped.
  core::Status load();
  // Adds a new task and writes its record; io error when it cannot be written.
  core::Status add(Task task);
  std::optional<Task> get(const std::string& id) const;
  // Newest first.
  std::vector<Task> list() const;
  // Applies `change` to the task; when it names an event, the event is recorded and handed to
  // the subscribers and the listener. A change is written to disk (progress at most once a
  // second).
  // False for an unknown task.
  bool update(const std::string& id, const Change& change);

  // The events after `last_id`, then (until unsubscribe) each new one to `subscriber`, with no
  // gap or repeat between the two. nullopt for an unknown task.
  std::optional<std::vector<TaskEvent>> subscribe(const std::string& id, std::uint64_t last_id,
                                                  Subscriber subscriber, std::uint64_t& token);
  void unsubscribe(const std::string& id, std::uint64_t token);
  // Hears every event of every task (webhooks).
  void set_listener(std::function<void(const Task&, const TaskEvent&)> listener);
  std::vector<TaskEvent> events(const std::string& id) const;

  void add_attempt(const std::string& id, nlohmann::json attempt);
  std::optional<nlohmann::json> attempts(const std::string& id) const;

  // Drops finished tasks last changed before `cutoff` (records and output directories under
  // `outputs`); returns their ids.
  std::vector<std::string> prune(TimePoint cutoff, const std::filesystem::path& outputs);
  // Writes every record with unwritten changes.
  void flush();

 private:
  struct Entry {
    Task task;
    std::vector<TaskEvent> events;
    nlohmann::json attempts = nlohmann::json::array();
    std::map<std::uint64_t, Subscriber> subscribers;
    std::uint64_t version = 0;
    std::chrono::steady_clock::time_point last_write{};
    std::mutex write_mutex;
    std::atomic<std::uint64_t> written{0};
  };
  // Writes the entry's record if `version` is newer than what is on disk (outside m_mutex).
  void write(const std::shared_ptr<Entry>& entry, std::uint64_t version, const std::string& text);
  std::string record_text(const Entry& entry) const;
  // Progress records are written by this thread, so an fsync never holds up a run's events.
  void writer_loop();

  std::filesystem::path m_dir;
  mutable std::mutex m_mutex;
  std::map<std::string, std::shared_ptr<Entry>> m_tasks;
  std::function<void(const Task&, const TaskEvent&)> m_listener;
  std::uint64_t m_next_token = 1;
  std::mutex m_write_queue_mutex;
  std::condition_variable m_write_cv;
  std::map<std::string, std::tuple<std::shared_ptr<Entry>, std::uint64_t, std::string>> m_write_queue;
  bool m_write_stop = false;
  std::thread m_writer;
};

}  // namespace autopod::agent::service
