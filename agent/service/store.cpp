#include "agent/service/store.hpp"

#include <algorithm>

#include "core/fs.hpp"
#include "core/log.hpp"

namespace autopod::agent::service {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
// Enough for any client reconnecting within a run; older events are dropped from replay.
constexpr std::size_t k_max_events = 1000;
constexpr auto k_progress_write_interval = std::chrono::seconds(1);
}  // namespace

TaskStore::TaskStore(fs::path dir) : m_dir(std::move(dir)), m_writer([this] { writer_loop(); }) {}

TaskStore::~TaskStore() {
  {
    std::lock_guard lock(m_write_queue_mutex);
    m_write_stop = true;
  }
  m_write_cv.notify_all();
  m_writer.join();
}

void TaskStore::writer_loop() {
  std::unique_lock lock(m_write_queue_mutex);
  for (;;) {
    m_write_cv.wait(lock, [&] { return m_write_stop || !m_write_queue.empty(); });
    if (m_write_queue.empty()) return;
    auto job = std::move(m_write_queue.begin()->second);
    m_write_queue.erase(m_write_queue.begin());
    lock.unlock();
    write(std::get<0>(job), std::get<1>(job), std::get<2>(job));
    lock.lock();
  }
}

core::Status TaskStore::load() {
  TRY(core::ensure_dir(m_dir));
  std::error_code ec;
  for (const auto& file : fs::directory_iterator(m_dir, ec)) {
    if (file.path().extension() != ".json") continue;
    if (file.path().filename() == "tasks.json") continue;  // autopod models' own list (models::TaskStore)
    auto text = core::read_file(file.path());
    if (!text) continue;
    json record = json::parse(*text, nullptr, false);
    auto task = from_record(record);
    if (record.is_discarded() || !task) {
      core::logger("agent")->warn("skipping {}: not a task record", file.path().string());
      continue;
    }
    auto entry = std::make_shared<Entry>();
    entry->task = std::move(task).value();
    for (const auto& e : record.value("events", json::array()))
      entry->events.push_back({e.value("id", std::uint64_t{0}), e.value("event", ""), e.value("data", "")});
    entry->attempts = record.value("webhooks", json::array());
    std::lock_guard lock(m_mutex);
    m_tasks[entry->task.id] = entry;
  }
  if (ec) return core::fail(core::ErrorCode::io, "cannot list " + m_dir.string() + ": " + ec.message());
  return {};
}

std::string TaskStore::record_text(const Entry& e) const {
  json record = to_record(e.task);
  json events = json::array();
  for (const auto& ev : e.events) events.push_back({{"id", ev.id}, {"event", ev.name}, {"data", ev.data}});
  record["events"] = std::move(events);
  record["webhooks"] = e.attempts;
  return record.dump();
}

void TaskStore::write(const std::shared_ptr<Entry>& entry, std::uint64_t version, const std::string& text) {
  std::lock_guard lock(entry->write_mutex);
  if (entry->written >= version) return;
  auto path = m_dir / (entry->task.id + ".json");
  if (auto st = core::write_file_atomic(path, text, 0600); !st) {
    core::logger("agent")->error("task {}: {}", entry->task.id, st.error().message);
    return;
  }
  entry->written = version;
}

core::Status TaskStore::add(Task task) {
  auto entry = std::make_shared<Entry>();
  entry->task = std::move(task);
  entry->version = 1;
  std::string text = record_text(*entry);
  {
    std::lock_guard lock(m_mutex);
    m_tasks[entry->task.id] = entry;
  }
  std::lock_guard lock(entry->write_mutex);
  TRY(core::write_file_atomic(m_dir / (entry->task.id + ".json"), text, 0600));
  entry->written = 1;
  return {};
}

std::optional<Task> TaskStore::get(const std::string& id) const {
  std::lock_guard lock(m_mutex);
  auto it = m_tasks.find(id);
  if (it == m_tasks.end()) return std::nullopt;
  return it->second->task;
}

std::vector<Task> TaskStore::list() const {
  std::vector<Task> out;
  {
    std::lock_guard lock(m_mutex);
    for (const auto& [id, e] : m_tasks) out.push_back(e->task);
  }
  std::stable_sort(out.begin(), out.end(), [](const Task& a, const Task& b) {
    return a.created_at != b.created_at ? a.created_at > b.created_at : a.id > b.id;
  });
  return out;
}

bool TaskStore::update(const std::string& id, const Change& change) {
  std::shared_ptr<Entry> entry;
  std::string text;
  std::uint64_t version = 0;
  bool progress_only = false;
  {
    std::lock_guard lock(m_mutex);
    auto it = m_tasks.find(id);
    if (it == m_tasks.end()) return false;
    entry = it->second;
    Task& t = entry->task;
    const char* name = change(t);
    if (!name) return true;  // nothing changed
    if (!*name) name = nullptr;  // changed, without an event
    ++entry->version;
    if (name) {
      t.updated_at = std::chrono::system_clock::now();
      std::uint64_t next = entry->events.empty() ? 1 : entry->events.back().id + 1;
      TaskEvent ev{next, name, api_view(t).dump()};
      entry->events.push_back(ev);
      if (entry->events.size() > k_max_events) entry->events.erase(entry->events.begin());
      for (const auto& [token, s] : entry->subscribers) s(ev);
      if (m_listener) m_listener(t, ev);
    }
    auto now = std::chrono::steady_clock::now();
    progress_only = name && std::string_view(name) == "progress";
    if (!progress_only || now - entry->last_write >= k_progress_write_interval) {
      entry->last_write = now;
      text = record_text(*entry);
      version = entry->version;
    }
  }
  if (!version) return true;
  if (progress_only) {
    std::lock_guard lock(m_write_queue_mutex);
    m_write_queue[id] = {entry, version, std::move(text)};
    m_write_cv.notify_one();
  } else {
    write(entry, version, text);
  }
  return true;
}

std::optional<std::vector<TaskEvent>> TaskStore::subscribe(const std::string& id, std::uint64_t last_id,
                                                           Subscriber subscriber, std::uint64_t& token) {
  std::lock_guard lock(m_mutex);
  auto it = m_tasks.find(id);
  if (it == m_tasks.end()) return std::nullopt;
  std::vector<TaskEvent> replay;
  for (const auto& e : it->second->events)
    if (e.id > last_id) replay.push_back(e);
  token = m_next_token++;
  it->second->subscribers[token] = std::move(subscriber);
  return replay;
}

void TaskStore::unsubscribe(const std::string& id, std::uint64_t token) {
  std::lock_guard lock(m_mutex);
  if (auto it = m_tasks.find(id); it != m_tasks.end()) it->second->subscribers.erase(token);
}

void TaskStore::set_listener(std::function<void(const Task&, const TaskEvent&)> listener) {
  std::lock_guard lock(m_mutex);
  m_listener = std::move(listener);
}

std::vector<TaskEvent> TaskStore::events(const std::string& id) const {
  std::lock_guard lock(m_mutex);
  auto it = m_tasks.find(id);
  return it == m_tasks.end() ? std::vector<TaskEvent>{} : it->second->events;
}

void TaskStore::add_attempt(const std::string& id, json attempt) {
  std::shared_ptr<Entry> entry;
  std::string text;
  std::uint64_t version;
  {
    std::lock_guard lock(m_mutex);
    auto it = m_tasks.find(id);
    if (it == m_tasks.end()) return;
    entry = it->second;
    entry->attempts.push_back(std::move(attempt));
    version = ++entry->version;
    text = record_text(*entry);
  }
  write(entry, version, text);
}

std::optional<json> TaskStore::attempts(const std::string& id) const {
  std::lock_guard lock(m_mutex);
  auto it = m_tasks.find(id);
  if (it == m_tasks.end()) return std::nullopt;
  return it->second->attempts;
}

std::vector<std::string> TaskStore::prune(TimePoint cutoff, const fs::path& outputs) {
  std::vector<std::string> gone;
  {
    std::lock_guard lock(m_mutex);
    for (auto it = m_tasks.begin(); it != m_tasks.end();) {
      const Task& t = it->second->task;
      if (is_final(t.status) && t.updated_at < cutoff && it->second->subscribers.empty()) {
        gone.push_back(t.id);
        it = m_tasks.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& id : gone) {
    std::error_code ec;
    // The record goes last: while it exists, so may the rest.
    fs::remove_all(outputs / id, ec);
    fs::remove_all(m_dir / (id + ".inputs"), ec);
    fs::remove(m_dir / (id + ".json"), ec);
  }
  return gone;
}

void TaskStore::flush() {
  std::vector<std::tuple<std::shared_ptr<Entry>, std::uint64_t, std::string>> dirty;
  {
    std::lock_guard lock(m_mutex);
    for (auto& [id, e] : m_tasks)
      if (e->version > e->written) dirty.emplace_back(e, e->version, record_text(*e));
  }
  for (auto& [e, v, text] : dirty) write(e, v, text);
}

}  // namespace autopod::agent::service
