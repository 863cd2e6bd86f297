// Followers: threads per task, cancel marks and slot waits shared by Generations and Syncs.

#include "agent/service/followers.hpp"

namespace autopod::agent::service {

using core::ErrorCode;
using core::fail;

Followers::~Followers() {
  stop();
}

void Followers::start(const std::string& id, std::function<void()> follow) {
  std::lock_guard lock(m_mutex);
  if (m_stopping)
    return;
  for (const auto& done : m_done)
    if (auto it = m_threads.find(done); it != m_threads.end()) {
      it->second.join();
      m_threads.erase(it);
    }
  m_done.clear();
  if (m_threads.count(id))
    return;
  m_threads[id] = std::thread([this, id, follow = std::move(follow)] {
    follow();
    std::lock_guard l(m_mutex);
    m_done.push_back(id);
  });
}

void Followers::stop() {
  std::map<std::string, std::thread> threads;
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
    threads.swap(m_threads);
  }
  m_cv.notify_all();
  for (auto& [id, t] : threads)
    t.join();
}

bool Followers::following(const std::string& id) const {
  std::lock_guard lock(m_mutex);
  return !m_stopping && !m_cancelled.count(id);
}

bool Followers::cancelled(const std::string& id) const {
  std::lock_guard lock(m_mutex);
  return m_cancelled.count(id) > 0;
}

bool Followers::wait_to_take(const std::string& id, const std::function<bool()>& take) {
  std::unique_lock lock(m_mutex);
  bool taken = false;
  m_cv.wait(lock, [&] { return m_stopping || m_cancelled.count(id) || (taken = take()); });
  return taken;
}

void Followers::changed(const std::function<void()>& change) {
  {
    std::lock_guard lock(m_mutex);
    change();
  }
  m_cv.notify_all();
}

core::Result<Task> Followers::cancel(TaskStore& store,
                                     const std::string& id,
                                     const std::function<core::Status(const Task&)>& stop_remote) {
  auto task = store.get(id);
  if (!task)
    return fail(ErrorCode::not_found, "no task " + id);
  if (is_final(task->status))
    return fail(ErrorCode::conflict,
                "task " + id + " has already ended (" + to_string(task->status) + ")");
  changed([&] { m_cancelled.insert(id); });
  // Read again: a prompt submitted or a job started meanwhile is recorded by now, or taken back
  // by its follower, which sees the mark.
  task = store.get(id);
  if (auto st = stop_remote(*task); !st) {
    std::lock_guard lock(m_mutex);
    m_cancelled.erase(id);
    return fail(st.error());
  }
  store.update(id, [&](Task& t) -> const char* {
    if (is_final(t.status))
      return nullptr;
    t.status = TaskStatus::cancelled;
    return "cancelled";
  });
  return *store.get(id);
}

void fail_task(TaskStore& store, const std::string& id, const core::Error& e) {
  // A rejected workflow's message lists every node error, one per line: all of it goes in details.
  nlohmann::json error = {{"message", e.message.substr(0, e.message.find('\n'))},
                          {"details", e.message + (e.hint.empty() ? "" : "\nhint: " + e.hint)},
                          {"nodeId", nullptr},
                          {"nodeType", nullptr}};
  store.update(id, [&](Task& t) -> const char* {
    if (is_final(t.status))
      return nullptr;
    t.status = TaskStatus::error;
    t.error = error;
    return "error";
  });
}

}  // namespace autopod::agent::service
