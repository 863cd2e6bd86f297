// autopod models sync|pull|tasks|pause|resume|cancel|retry: --local runs the engine in this
// process; otherwise the pod-side program runs on the pod over libssh2 exec (agent/pod_ssh.hpp,
// one session per command), detached, and this process follows its state file.

#include <unistd.h>

#include <iostream>
#include <map>
#include <thread>

#include "agent/cli/commands.hpp"
#include "agent/cli/models_library_cmd.hpp"
#include "agent/pod_ssh.hpp"
#include "core/text.hpp"
#include "models/pod.hpp"

namespace autopod::agent {
namespace {

using core::ErrorCode;
using nlohmann::json;

struct Flags {
  std::string manifest, pod, local, models_root, source, folder, name, sha256, id;
  bool prune = false, dry_run = false;
  int connections = 8;
};

bool is_terminal() { return ::isatty(2) == 1; }
bool finished(const std::string& s) { return s == "done" || s == "failed" || s == "cancelled" || s == "paused"; }

struct PodTarget {
  providers::Pod pod;
  models::PodExec exec;
  std::string root;
};

core::Result<PodTarget> pod_target(Context& ctx, const std::string& id, const std::string& root) {
  TRY_ASSIGN(auto cfg, ctx.config());
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto pod, providers::find_pod(*provider, id));
  if (!pod.ssh)
    return core::fail(ErrorCode::not_found, "pod " + pod.name + " has no direct ssh endpoint yet",
                      "it needs 22/tcp exposed and to be running: autopod connect --name " + pod.name);
  TRY(ctx.ensure_key(pod));
  std::string r = !root.empty() ? root : pod.models_root;
  if (r.empty()) return core::fail(ErrorCode::invalid_argument, "pod " + pod.name + " names no models root", "pass --models-root");
  auto exec = pod_exec(*cfg, pod);  // libssh2: one session for the command's calls
  return PodTarget{std::move(pod), std::move(exec), r};
}

std::string pct(std::int64_t bytes, std::int64_t total) {
  return total > 0 ? std::to_string(bytes * 100 / total) + "%" : format_bytes(static_cast<std::uint64_t>(bytes));
}

// One line per running task with speed and ETA plus a total, rewritten in place on a terminal;
// otherwise a line per state change (JSON lines with --json).
class Display {
 public:
  explicit Display(bool as_json) : m_json(as_json), m_tty(!as_json && is_terminal()) {}
  void show(const std::vector<models::Task>& tasks) {
    if (m_tty) return redraw(tasks);
    for (const auto& t : tasks) {
      if (m_seen[t.id] == models::to_string(t.state)) continue;
      m_seen[t.id] = models::to_string(t.state);
      if (m_json)
        std::cout << json{{"id", t.id}, {"name", t.destination.filename().string()}, {"state", m_seen[t.id]},
                          {"bytes", t.bytes}, {"total", t.total}, {"error", t.error}}.dump() << "\n";
      else
        std::cerr << t.id << " " << t.destination.filename().string() << ": " << m_seen[t.id]
                  << (t.error.empty() ? "" : " (" + t.error + ")") << "\n";
    }
    std::cout.flush();
  }

 private:
  void redraw(const std::vector<models::Task>& tasks) {
    for (int i = 0; i < m_lines; ++i) std::cerr << "\x1b[1A\x1b[2K";
    m_lines = 0;
    std::int64_t bytes = 0, total = 0;
    double speed = 0;
    for (const auto& t : tasks) {
      bytes += t.bytes, total += std::max<std::int64_t>(t.total, 0), speed += t.bytes_per_sec;
      if (t.state != models::TaskState::running && t.state != models::TaskState::verifying) continue;
      std::cerr << "  " << t.destination.filename().string() << "  " << pct(t.bytes, t.total) << "  "
                << format_bytes(static_cast<std::uint64_t>(t.bytes_per_sec)) << "/s  eta "
                << (t.eta_secs < 0 ? std::string("?") : std::to_string(t.eta_secs) + "s") << "  "
                << models::to_string(t.state) << "\n";
      ++m_lines;
    }
    std::cerr << "total " << format_bytes(static_cast<std::uint64_t>(bytes)) << " / "
              << format_bytes(static_cast<std::uint64_t>(total)) << "  "
              << format_bytes(static_cast<std::uint64_t>(speed)) << "/s\n";
    ++m_lines;
  }
  bool m_json, m_tty;
  int m_lines = 0;
  std::map<std::string, std::string> m_seen;
};

core::Status print_plan(Context& ctx, const models::SyncPlan& plan) {
  if (ctx.json()) {
    json items = json::array();
    for (const auto& i : plan.items)
      items.push_back({{"action", models::to_string(i.action)}, {"path", i.path.string()}, {"bytes", i.bytes}});
    std::cout << json{{"plan", items}, {"download_bytes", plan.download_bytes},
                      {"prune_bytes", plan.prune_bytes}, {"up_to_date", plan.up_to_date()}}.dump() << "\n";
    return {};
  }
  if (plan.up_to_date()) {
    std::cout << "up to date (" << plan.items.size() << " files)\n";
    return {};
  }
  for (const auto& i : plan.items) {
    std::string what = models::to_string(i.action);
    if (i.action == models::Action::download || i.action == models::Action::replace)
      what += " " + format_bytes(static_cast<std::uint64_t>(i.bytes));
    std::cout << what << "  " << i.path.string() << "\n";
  }
  std::cout << "total: download " << format_bytes(static_cast<std::uint64_t>(plan.download_bytes))
            << ", prune " << format_bytes(static_cast<std::uint64_t>(plan.prune_bytes)) << "\n";
  return {};
}

std::vector<models::Task> tasks_named(models::TaskStore& store, const std::vector<std::string>& ids) {
  std::vector<models::Task> out;
  for (const auto& id : ids)
    if (auto t = store.get(id)) out.push_back(*t);
  return out;
}

// Runs the tasks here, at most three at once, each with its own connection and resolver;
// writes each placed file's record. The first failure is returned after all have ended.
core::Status run_local(Context& ctx, models::TaskStore& store, const std::vector<std::string>& ids,
                       const std::vector<std::optional<models::ResolvedFile>>& resolved, int connections) {
  Display display(ctx.json());
  std::vector<core::Status> results(ids.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    auto transport = core::make_curl_transport();
    models::Resolver resolver(*transport, models::Endpoints::from_env());
    models::TransferOptions options;
    options.connections = connections;
    for (std::size_t i; (i = next++) < ids.size();) {
      auto done = models::run_task(store, ids[i], resolver, options);
      if (!done) results[i] = core::fail(done.error());
      else if (resolved[i]) results[i] = models::record_placed(done->path, *resolved[i], *done);
      else if (auto task = store.get(ids[i]); task) {
        models::ResolvedFile r;
        r.source = task->entry.source.text, r.folder = task->destination.parent_path().filename().string();
        r.name = task->destination.filename().string(), r.revision = task->entry.source.revision;
        results[i] = models::record_placed(done->path, r, *done);
      }
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < std::min<std::size_t>(3, ids.size()); ++i) threads.emplace_back(worker);
  std::atomic<bool> stop{false};
  std::thread monitor([&] {
    while (!stop) {
      display.show(tasks_named(store, ids));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  for (auto& t : threads) t.join();
  stop = true;
  monitor.join();
  display.show(tasks_named(store, ids));
  for (auto& r : results) TRY(r);
  return {};
}

// Copies a pod job's task states into the local store's tasks of that job.
void merge_job(models::TaskStore& store, const json& job) {
  auto list = store.list();
  if (!list) return;
  for (auto task : *list) {
    if (task.job != job.value("job", "")) continue;
    for (const auto& t : job.value("tasks", json::array())) {
      if (t.value("name", "") != task.destination.filename().string() ||
          t.value("folder", "") != task.destination.parent_path().filename().string())
        continue;
      std::string s = t.value("state", "running");
      for (auto st : {models::TaskState::queued, models::TaskState::running, models::TaskState::verifying,
                      models::TaskState::done, models::TaskState::failed, models::TaskState::paused,
                      models::TaskState::cancelled})
        if (s == models::to_string(st)) task.state = st;
      task.bytes = t.value("bytes", std::int64_t{0}), task.total = t.value("total", std::int64_t{-1});
      task.bytes_per_sec = t.value("bytes_per_sec", 0.0), task.eta_secs = t.value("eta_secs", std::int64_t{-1});
      task.connections = t.value("connections", 0), task.error = t.value("error", "");
      task.updated_at = core::iso_time();
      (void)store.put(task);
    }
  }
}

core::Status run_on_pod(Context& ctx, models::TaskStore& store, const PodTarget& target,
                        const models::SyncPlan& plan, const Flags& f) {
  TRY_ASSIGN(auto job, models::pod_start(target.exec, target.root, plan, f.connections));
  if (job.empty()) return {};
  std::vector<std::string> ids;
  for (const auto& item : plan.items) {
    if (!item.resolved) continue;
    TRY_ASSIGN(auto task, store.add(item.entry, item.path));
    task.pod = target.pod.name, task.job = job, task.state = models::TaskState::running;
    TRY(store.put(task));
    ids.push_back(task.id);
  }
  if (!ctx.json()) std::cerr << "job " << job << " runs on " << target.pod.name << " (detached; `autopod models tasks` re-attaches)\n";
  Display display(ctx.json());
  for (;;) {
    auto state = models::pod_status(target.exec, target.root, job);
    if (!state) return core::fail(state.error());
    merge_job(store, *state);
    display.show(tasks_named(store, ids));
    if (finished(state->value("state", ""))) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  for (const auto& t : tasks_named(store, ids))
    if (t.state == models::TaskState::failed)
      return core::fail(ErrorCode::remote, t.destination.filename().string() + ": " + t.error,
                        "run the same sync again: it resumes what arrived");
  return {};
}

core::Status cmd_sync(Context& ctx, const Flags& f, const models::Manifest& manifest) {
  TRY_ASSIGN(auto cfg, ctx.config());
  models::TaskStore store(cfg->home);
  auto transport = core::make_curl_transport();
  models::Resolver resolver(*transport, models::Endpoints::from_env());
  std::optional<PodTarget> target;
  models::RootListing listing;
  std::filesystem::path root = f.local;
  if (f.local.empty()) {
    TRY_ASSIGN(auto t, pod_target(ctx, f.pod, f.models_root));
    target = std::move(t);
    root = target->root;
    TRY_ASSIGN(listing, models::pod_listing(target->exec, target->root));
  } else {
    listing = models::list_root(root);
  }
  TRY_ASSIGN(auto plan, models::plan_sync(manifest, listing, root, resolver,
                                          f.prune ? models::Prune::yes : models::Prune::no));
  TRY(print_plan(ctx, plan));
  if (f.dry_run || plan.up_to_date()) return {};
  if (listing.free_bytes >= 0 && plan.download_bytes > listing.free_bytes)
    return core::fail(ErrorCode::io, "not enough space under " + root.string() + ": " +
                                         format_bytes(static_cast<std::uint64_t>(plan.download_bytes)) + " to arrive, " +
                                         format_bytes(static_cast<std::uint64_t>(listing.free_bytes)) + " free",
                      "free some space or use a bigger volume");
  if (target) return run_on_pod(ctx, store, *target, plan, f);
  models::SyncPlan prunes;
  std::vector<std::string> ids;
  std::vector<std::optional<models::ResolvedFile>> resolved;
  for (const auto& item : plan.items) {
    if (item.action == models::Action::prune) prunes.items.push_back(item);
    if (!item.resolved) continue;
    TRY_ASSIGN(auto task, store.add(item.entry, item.path));
    ids.push_back(task.id), resolved.push_back(item.resolved);
  }
  TRY(models::apply_plan(prunes, root, {}, resolver));
  return run_local(ctx, store, ids, resolved, f.connections);
}

core::Status cmd_tasks(Context& ctx) {
  TRY_ASSIGN(auto cfg, ctx.config());
  models::TaskStore store(cfg->home);
  TRY_ASSIGN(auto tasks, store.list());
  std::map<std::string, std::pair<std::string, std::string>> jobs;  // job -> pod, root
  for (const auto& t : tasks)
    if (!t.job.empty() && !finished(models::to_string(t.state)))
      jobs[t.job] = {t.pod, t.destination.parent_path().parent_path().string()};
  for (const auto& [job, where] : jobs) {  // re-attach: read the pod-side state over ssh
    auto target = pod_target(ctx, where.first, where.second);
    auto state = target ? models::pod_status(target->exec, where.second, job) : core::fail(target.error());
    if (state) merge_job(store, *state);
    else std::cerr << "warning: cannot read job " << job << " on " << where.first << ": " << state.error().message << "\n";
  }
  TRY_ASSIGN(tasks, store.list());
  if (ctx.json()) {
    for (const auto& t : tasks)
      std::cout << json{{"id", t.id}, {"source", t.entry.source.text}, {"destination", t.destination.string()},
                        {"state", models::to_string(t.state)}, {"bytes", t.bytes}, {"total", t.total},
                        {"bytes_per_sec", t.bytes_per_sec}, {"eta_secs", t.eta_secs},
                        {"connections", t.connections}, {"pod", t.pod}, {"error", t.error}}.dump() << "\n";
    return {};
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "STATE", "PROGRESS", "WHERE", "FILE", "ERROR"}};
  for (const auto& t : tasks)
    rows.push_back({t.id, models::to_string(t.state), pct(t.bytes, t.total), t.pod.empty() ? "local" : t.pod,
                    t.destination.string(), t.error});
  print_table(rows);
  return {};
}

core::Status cmd_control(Context& ctx, const std::string& id, models::TaskControl control) {
  TRY_ASSIGN(auto cfg, ctx.config());
  models::TaskStore store(cfg->home);
  TRY_ASSIGN(auto task, store.get(id));
  if (!task.job.empty()) {
    TRY_ASSIGN(auto target, pod_target(ctx, task.pod, task.destination.parent_path().parent_path().string()));
    return models::pod_control(target.exec, target.root, task.job, control);
  }
  TRY(store.request(id, control));
  if (control != models::TaskControl::resume && control != models::TaskControl::retry) return {};
  return run_local(ctx, store, {id}, {std::nullopt}, 8);  // continues from the partial file
}

}  // namespace

void add_models_commands(CLI::App& app, Context& ctx, int& exit_code) {
  static Flags f;
  auto* models = app.add_subcommand("models", "model files on the pod's volume (or --local)")->require_subcommand(1);
  auto target = [](CLI::App* c) {
    c->add_option("POD", f.pod, "pod id or name (default: the only pod)");
    c->add_option("--local", f.local, "a models root on this machine instead of a pod");
    c->add_option("--models-root", f.models_root, "the pod's models root (default: the pod's)");
    c->add_option("--connections", f.connections, "connections per file (default 8)");
  };
  auto* sync = models->add_subcommand("sync", "make the models root hold what MANIFEST lists");
  sync->add_option("MANIFEST", f.manifest, "manifest YAML")->required();
  target(sync);
  sync->add_flag("--prune", f.prune, "remove files autopod placed that the manifest no longer lists");
  sync->add_flag("--dry-run", f.dry_run, "print the plan, change nothing");
  sync->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto manifest, models::load_manifest(f.manifest));
    return cmd_sync(ctx, f, manifest);
  }));
  auto* pull = models->add_subcommand("pull", "fetch one file, with the same machinery");
  pull->add_option("SOURCE", f.source, "hf://..., civitai:ID, a Civitai or https URL")->required();
  target(pull);
  pull->add_option("--folder", f.folder, "ComfyUI folder key (inferred for Civitai)");
  pull->add_option("--name", f.name, "file name to place");
  pull->add_option("--sha256", f.sha256, "expected sha256");
  pull->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    auto q = [](const std::string& v) {  // a YAML single-quoted scalar
      std::string out = "'";
      for (char c : v) out += c == '\'' ? std::string("''") : std::string(1, c);
      return out + "'";
    };
    std::string yaml = "models:\n  - source: " + q(f.source) + "\n";
    if (!f.folder.empty()) yaml += "    folder: " + q(f.folder) + "\n";
    if (!f.name.empty()) yaml += "    name: " + q(f.name) + "\n";
    if (!f.sha256.empty()) yaml += "    sha256: " + q(f.sha256) + "\n";
    TRY_ASSIGN(auto manifest, models::parse_manifest(yaml, "pull"));
    return cmd_sync(ctx, f, manifest);
  }));
  models->add_subcommand("tasks", "list download tasks (re-attaching to pod jobs)")
      ->callback(run(ctx, exit_code, [&ctx] { return cmd_tasks(ctx); }));
  const std::pair<const char*, models::TaskControl> controls[] = {
      {"pause", models::TaskControl::pause}, {"resume", models::TaskControl::resume},
      {"cancel", models::TaskControl::cancel}, {"retry", models::TaskControl::retry}};
  for (const auto& [name, control] : controls) {
    auto* c = models->add_subcommand(name, std::string(name) + " a task");
    c->add_option("ID", f.id, "task id (autopod models tasks)")->required();
    c->callback(run(ctx, exit_code, [&ctx, control = control] { return cmd_control(ctx, f.id, control); }));
  }
  add_models_library_commands(*models, ctx, exit_code,
                              [&ctx](const std::string& pod, const std::string& root) -> core::Result<ModelsRoot> {
                                TRY_ASSIGN(auto t, pod_target(ctx, pod, root));
                                return ModelsRoot{t.exec, t.root};
                              });
  add_models_push_command(*models, ctx, exit_code);
}

}  // namespace autopod::agent
