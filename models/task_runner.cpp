// run_task: one task through its states, its progress written at most twice a second.

#include <mutex>

#include "core/text.hpp"
#include "models/models.hpp"

namespace autopod::models {

core::Result<TransferResult> run_task(TaskStore& store, const std::string& id, Resolver& resolver,
                                      const TransferOptions& options) {
  TRY_ASSIGN(auto task, store.get(id));
  if (task.state != TaskState::queued)
    return core::fail(core::ErrorCode::conflict,
                      "task " + id + " is " + to_string(task.state) + ", not queued",
                      "resume or retry it first");
  auto set = [&](TaskState state, const std::string& error = {}) {
    auto now = store.get(id);
    if (now) task.control = now->control;
    task.state = state;
    task.error = error;
    if (state == TaskState::paused || state == TaskState::cancelled || state == TaskState::done)
      task.control.clear();
    task.updated_at = core::iso_time();
    return store.put(task);
  };
  TRY(set(TaskState::resolving));
  auto resolved = resolver.resolve(task.entry);
  if (!resolved) {
    (void)set(TaskState::failed, resolved.error().message);
    return core::fail(resolved.error());
  }
  task.total = resolved->size;
  TRY(set(TaskState::running));
  TransferOptions opt = options;
  const ManifestEntry entry = task.entry;
  opt.reresolve = [&resolver, entry] { return resolver.resolve(entry); };
  if (opt.token.empty()) opt.token = resolver.endpoints().token_for(resolved->auth);
  std::mutex mu;
  auto last_poll = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  StopKind asked = StopKind::none;
  opt.on_progress = [&](const Progress& p) {
    std::lock_guard lock(mu);
    task.bytes = p.bytes, task.bytes_per_sec = p.bytes_per_sec, task.connections = p.connections;
    task.eta_secs = p.bytes_per_sec > 0 && p.total > 0
                        ? static_cast<std::int64_t>(static_cast<double>(p.total - p.bytes) / p.bytes_per_sec)
                        : -1;
    if (options.on_progress) options.on_progress(p);
  };
  opt.should_stop = [&] {
    std::lock_guard lock(mu);
    auto now = std::chrono::steady_clock::now();
    if (now - last_poll < std::chrono::milliseconds(500)) return asked;
    last_poll = now;
    if (auto current = store.get(id)) {
      task.control = current->control;
      asked = task.control == "pause" ? StopKind::pause : task.control == "cancel" ? StopKind::cancel : StopKind::none;
    }
    // All bytes are on disk: what remains is the hash of the tail and the rename.
    if (task.total > 0 && task.bytes >= task.total) task.state = TaskState::verifying;
    (void)store.put(task);
    return asked;
  };
  auto done = download(*resolved, task.destination, opt);
  if (!done) {
    TaskState end = asked == StopKind::pause ? TaskState::paused
                    : asked == StopKind::cancel ? TaskState::cancelled
                                                : TaskState::failed;
    (void)set(end, end == TaskState::failed ? done.error().message : "");
    return core::fail(done.error());
  }
  task.bytes = done->size;
  task.eta_secs = 0;
  TRY(set(TaskState::done));
  return done;
}

}  // namespace autopod::models
