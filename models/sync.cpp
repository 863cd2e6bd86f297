// One sync (see sync.hpp): plan, start, follow, control, re-attach; the pod job's state merged
// into the TaskStore so every terminal sees the same tasks.

#include "models/sync.hpp"

#include <atomic>
#include <cstdio>
#include <thread>

#include "core/text.hpp"
#include "models/slots.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using nlohmann::json;

bool ended(TaskState s) {
  return s == TaskState::done || s == TaskState::failed || s == TaskState::cancelled ||
         s == TaskState::paused;
}

std::string gib(std::int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return buf;
}

// Copies a pod job's task states into the store's tasks of that job (a scan job: its one task).
void merge_job(TaskStore& store, const json& job) {
  auto list = store.list();
  if (!list)
    return;
  for (auto task : *list) {
    if (task.job != job.value("job", ""))
      continue;
    for (const auto& t : job.value("tasks", json::array())) {
      bool scan = task.kind == "scan";
      if (!scan && (t.value("name", "") != task.destination.filename().string() ||
                    t.value("folder", "") != task.destination.parent_path().filename().string()))
        continue;
      task.files = t.value("files", 0), task.files_done = t.value("files_done", 0);
      std::string s = t.value("state", "running");
      for (auto st : {TaskState::queued, TaskState::running, TaskState::verifying, TaskState::done,
                      TaskState::failed, TaskState::paused, TaskState::cancelled})
        if (s == to_string(st))
          task.state = st;
      task.bytes = t.value("bytes", std::int64_t{0}),
      task.total = t.value("total", std::int64_t{-1});
      task.bytes_per_sec = t.value("bytes_per_sec", 0.0);
      task.eta_secs = t.value("eta_secs", std::int64_t{-1});
      task.connections = t.value("connections", 0), task.error = t.value("error", "");
      task.updated_at = core::iso_time();
      (void)store.put(task);
    }
  }
}

std::vector<Task> tasks_named(const TaskStore& store, const std::vector<std::string>& ids) {
  std::vector<Task> out;
  for (const auto& id : ids)
    if (auto t = store.get(id))
      out.push_back(*t);
  return out;
}

core::Result<SyncProgress> first_failure(SyncProgress p) {
  for (const auto& t : p.tasks)
    if (t.state == TaskState::failed)
      return core::fail(ErrorCode::remote, t.destination.filename().string() + ": " + t.error,
                        "run the same sync again: it resumes what arrived");
  return p;
}

}  // namespace

core::Result<RootListing> list_target(const SyncTarget& target) {
  if (target.on_pod())
    return pod_listing(target.exec, target.root.string());
  return list_root(target.root);
}

core::Result<SyncPlan> plan_on(const SyncTarget& target,
                               const Manifest& manifest,
                               Resolver& resolver,
                               Prune prune) {
  TRY_ASSIGN(auto listing, list_target(target));
  return plan_sync(manifest, listing, target.root, resolver, prune);
}

core::Status check_space(const SyncPlan& plan, const SyncTarget& target) {
  if (plan.free_bytes < 0 || plan.download_bytes <= plan.free_bytes)
    return {};
  return core::fail(ErrorCode::io,
                    "not enough space under " + target.root.string() +
                        (target.on_pod() ? " on " + target.pod : std::string()) + ": " +
                        gib(plan.download_bytes) + " to arrive, " + gib(plan.free_bytes) + " free",
                    "free some space or use a bigger volume");
}

namespace {

// What a pod job is started (or resumed) with; its tokens travel on stdin only.
PodJobOptions job_options(const SyncOptions& options) {
  Endpoints ep = options.endpoints ? *options.endpoints : Endpoints::from_env();
  PodJobOptions o;
  o.connections = options.connections, o.priority = options.priority;
  o.parallel = options.parallel;
  o.hf_token = ep.hf_token, o.civitai_token = ep.civitai_token;
  return o;
}

}  // namespace

core::Result<SyncRun> SyncRun::start(TaskStore& store,
                                     SyncTarget target,
                                     const SyncPlan& plan,
                                     SyncOptions options) {
  SyncRun run(store, std::move(target), std::move(options));
  if (run.m_target.on_pod()) {
    TRY_ASSIGN(run.m_job, pod_start(run.m_target.exec, run.m_target.root.string(), plan,
                                    job_options(run.m_options)));
    if (run.m_job.empty())
      return run;
  } else {
    SyncPlan prunes;
    for (const auto& item : plan.items)
      if (item.action == Action::prune)
        prunes.items.push_back(item);
    auto transport = core::make_curl_transport();
    Resolver unused(*transport, Endpoints{});  // prune items resolve nothing
    TRY(apply_plan(prunes, run.m_target.root, {}, unused));
  }
  for (const auto& item : plan.items) {
    if (!item.resolved)
      continue;
    TRY_ASSIGN(auto task, store.add(item.entry, item.path, run.m_options.priority));
    if (run.m_target.on_pod()) {
      task.pod = run.m_target.pod, task.job = run.m_job, task.state = TaskState::running;
      TRY(store.put(task));
    }
    run.m_ids.push_back(task.id);
    run.m_resolved.push_back(item.resolved);
  }
  return run;
}

core::Result<SyncRun> SyncRun::scan(TaskStore& store,
                                    SyncTarget target,
                                    const ScanRequest& request,
                                    SyncOptions options) {
  if (!target.on_pod())
    return core::fail(ErrorCode::invalid_argument, "a scan job needs an exec for its target",
                      "pass the pod's exec, or `sh -c` for a root on this machine");
  SyncRun run(store, std::move(target), std::move(options));
  TRY_ASSIGN(run.m_job, start_scan_job(run.m_target.exec, run.m_target.root.string(), request));
  ManifestEntry entry;
  entry.folder = request.folder;
  TRY_ASSIGN(auto task, store.add(entry, run.m_target.root, run.m_options.priority));
  task.kind = "scan", task.pod = run.m_target.pod, task.job = run.m_job;
  task.state = TaskState::running;
  TRY(store.put(task));
  run.m_ids.push_back(task.id);
  return run;
}

SyncRun SyncRun::attach(TaskStore& store, SyncTarget target, std::string job, SyncOptions options) {
  SyncRun run(store, std::move(target), std::move(options));
  run.m_job = std::move(job);
  if (auto list = store.list())
    for (const auto& t : *list)
      if (t.job == run.m_job)
        run.m_ids.push_back(t.id);
  return run;
}

SyncRun SyncRun::local(TaskStore& store,
                       SyncTarget target,
                       std::vector<std::string> ids,
                       SyncOptions options) {
  SyncRun run(store, std::move(target), std::move(options));
  run.m_ids = std::move(ids);
  run.m_resolved.resize(run.m_ids.size());
  return run;
}

SyncProgress SyncRun::progress_of(std::vector<Task> tasks) const {
  SyncProgress p;
  p.files = static_cast<int>(tasks.size());
  p.finished = true;
  for (const auto& t : tasks) {
    p.bytes += t.bytes;
    p.total += std::max<std::int64_t>(t.total, 0);
    if (t.state == TaskState::running || t.state == TaskState::verifying)
      p.bytes_per_sec += t.bytes_per_sec;
    p.files_done += t.state == TaskState::done;
    p.finished = p.finished && ended(t.state);
  }
  if (p.finished)
    p.eta_secs = 0;
  else if (p.bytes_per_sec > 0 && p.total >= p.bytes)
    p.eta_secs =
        static_cast<std::int64_t>(static_cast<double>(p.total - p.bytes) / p.bytes_per_sec);
  p.tasks = std::move(tasks);
  return p;
}

core::Result<SyncProgress> SyncRun::refresh(std::chrono::milliseconds wait) {
  if (m_target.on_pod() && !m_job.empty()) {
    TRY_ASSIGN(auto state, pod_status(m_target.exec, m_target.root.string(), m_job, wait));
    merge_job(*m_store, state);
  }
  return progress_of(tasks_named(*m_store, m_ids));
}

core::Result<SyncProgress> SyncRun::follow(const SyncProgressFn& on_progress,
                                           const std::function<bool()>& keep) {
  if (!m_target.on_pod())
    return run_local(on_progress);
  for (int failed = 0;;) {
    auto look = refresh(m_options.poll);
    if (!look && (look.error().code == ErrorCode::not_found || ++failed > m_options.tolerated_failures))
      return core::fail(look.error());
    if (!look) {
      std::this_thread::sleep_for(m_options.poll);
      continue;
    }
    failed = 0;
    auto p = std::move(look).value();
    if (on_progress)
      on_progress(p);
    if (p.finished || (keep && !keep()))
      return first_failure(std::move(p));
    if (m_job.empty())
      std::this_thread::sleep_for(m_options.poll);  // else the look itself waited on the pod
  }
}

namespace {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Waits for task `id`'s turn under `root` (shared with every process and pod job there, see
// slots.hpp), then runs it. cancelled when it was paused or cancelled while it waited.
core::Result<TransferResult> run_in_turn(TaskStore& store, const std::string& id,
                                         const std::filesystem::path& root, int limit,
                                         double queued_at, Resolver& resolver,
                                         const TransferOptions& options) {
  TRY_ASSIGN(auto task, store.get(id));
  TRY_ASSIGN(auto slot, DownloadSlot::enter(root, "local." + id, task.priority, limit, queued_at));
  TaskState seen = TaskState::queued;
  TRY_ASSIGN(bool turn, slot.wait([&] {
    auto now = store.get(id);
    seen = now ? now->state : TaskState::cancelled;
    return seen != TaskState::queued;
  }));
  if (!turn)
    return core::fail(ErrorCode::cancelled, "task " + id + " was " + to_string(seen) +
                                                " while it waited for one of the " +
                                                std::to_string(limit) + " download slots of " +
                                                root.string());
  return run_task(store, id, resolver, options);
}

}  // namespace

// The tasks run here, at most `parallel` at once under the root counting every other process
// and pod job there, each worker with its own connection and resolver; each placed file gets
// its record. The first failure is returned after all ended.
core::Result<SyncProgress> SyncRun::run_local(const SyncProgressFn& on_progress) {
  std::vector<core::Status> results(m_ids.size());
  std::atomic<std::size_t> next{0};
  Endpoints endpoints = m_options.endpoints ? *m_options.endpoints : Endpoints::from_env();
  const double queued_at = unix_seconds();
  auto worker = [&] {
    auto transport = core::make_curl_transport();
    Resolver resolver(*transport, endpoints);
    TransferOptions options;
    options.connections = m_options.connections;
    for (std::size_t i; (i = next++) < m_ids.size();) {
      auto done = run_in_turn(*m_store, m_ids[i], m_target.root, m_options.parallel, queued_at,
                              resolver, options);
      if (!done)
        results[i] = core::fail(done.error());
      else if (m_resolved[i])
        results[i] = record_placed(done->path, *m_resolved[i], *done);
      else if (auto task = m_store->get(m_ids[i]); task) {
        ResolvedFile r;
        r.source = task->entry.source.text,
        r.folder = task->destination.parent_path().filename().string();
        r.name = task->destination.filename().string(), r.revision = task->entry.source.revision;
        results[i] = record_placed(done->path, r, *done);
      }
    }
  };
  std::vector<std::thread> threads;
  auto workers = std::min<std::size_t>(
      static_cast<std::size_t>(std::max(1, m_options.parallel)), m_ids.size());
  for (std::size_t i = 0; i < workers; ++i)
    threads.emplace_back(worker);
  std::atomic<bool> stop{false};
  std::thread monitor([&] {
    while (!stop) {
      if (on_progress)
        on_progress(progress_of(tasks_named(*m_store, m_ids)));
      std::this_thread::sleep_for(m_options.poll);
    }
  });
  for (auto& t : threads)
    t.join();
  stop = true;
  monitor.join();
  auto last = progress_of(tasks_named(*m_store, m_ids));
  if (on_progress)
    on_progress(last);
  for (auto& r : results)
    TRY(r);
  return last;
}

core::Status SyncRun::control(TaskControl control) {
  if (m_target.on_pod()) {
    if (m_job.empty())
      return {};
    TRY(pod_control(m_target.exec, m_target.root.string(), m_job, control, job_options(m_options)));
    // The job runs again on the pod: its tasks are followed again from here or `models tasks`.
    bool again = control == TaskControl::resume || control == TaskControl::retry;
    if (again)
      return m_store->requeue_job(m_job);
    // Paused or cancelled on the pod: the job says so within half a second; the store follows,
    // so `models tasks` shows it at once (also for a job that is not running: cancel of a paused one).
    (void)refresh(std::chrono::seconds(2));
    return {};
  }
  for (const auto& id : m_ids)  // a file that has already ended keeps its state
    if (auto r = m_store->request(id, control); !r && r.error().code != ErrorCode::conflict)
      return r;
  return {};
}

}  // namespace autopod::models
