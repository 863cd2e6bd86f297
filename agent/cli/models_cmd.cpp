// autopod models sync|pull|tasks|pause|resume|cancel|retry: the target (a pod over libssh2 exec,
// agent/pod_ssh.hpp, one session per command, or --local DIR), the plan and the display; the
// sync itself is models/sync.hpp's, shared with the agent service.

#include <unistd.h>

#include <iostream>
#include <map>

#include "agent/cli/commands.hpp"
#include "agent/cli/models_library_cmd.hpp"
#include "agent/cli/models_library_parts.hpp"
#include "core/text.hpp"
#include "agent/model_sync.hpp"

namespace autopod::agent {
namespace {

using core::ErrorCode;
using nlohmann::json;

struct Flags {
  std::string manifest, for_workflow, for_manifest, pod, local, models_root, source, folder, name, sha256, id;
  bool prune = false, dry_run = false;
  int connections = 8, priority = 0;
};

// Tokens from config.yaml or the environment (which wins): for the resolves here, and for a pod
// job on stdin only.
models::SyncOptions sync_options(const core::Config& cfg, const Flags& f) {
  models::SyncOptions o;
  o.connections = f.connections, o.priority = f.priority;
  o.endpoints = models::Endpoints::from_config(cfg);
  return o;
}

bool is_terminal() { return ::isatty(2) == 1; }
bool finished(const std::string& s) { return s == "done" || s == "failed" || s == "cancelled" || s == "paused"; }

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

core::Result<models::SyncTarget> sync_target(Context& ctx, const Flags& f) {
  if (!f.local.empty())  // absolute: tasks record it, and resume may run from elsewhere
    return models::SyncTarget{{}, {}, std::filesystem::absolute(f.local).lexically_normal()};
  return pod_models_target(ctx, f.pod, f.models_root);
}

core::Status cmd_sync(Context& ctx, const Flags& f, const models::SyncTarget& target,
                      const models::Manifest& manifest, models::Resolver& resolver) {
  TRY_ASSIGN(auto cfg, ctx.config());
  models::TaskStore store(cfg->home);
  TRY_ASSIGN(auto plan, models::plan_on(target, manifest, resolver, f.prune ? models::Prune::yes : models::Prune::no));
  TRY(print_plan(ctx, plan));
  if (f.dry_run || plan.up_to_date()) return {};
  TRY(models::check_space(plan, target));
  TRY_ASSIGN(auto run, models::SyncRun::start(store, target, plan, sync_options(*cfg, f)));
  if (target.on_pod() && run.job().empty()) return {};  // prunes only
  if (target.on_pod() && !ctx.json())
    std::cerr << "job " << run.job() << " runs on " << target.pod << " (detached; `autopod models tasks` re-attaches)\n";
  Display display(ctx.json());
  TRY(run.follow([&](const models::SyncProgress& p) { display.show(p.tasks); }));
  return {};
}

core::Status cmd_sync(Context& ctx, const Flags& f, const models::Manifest& manifest) {
  TRY_ASSIGN(auto cfg, ctx.config());
  TRY_ASSIGN(auto target, sync_target(ctx, f));
  auto transport = core::make_curl_transport();
  models::Resolver resolver(*transport, models::Endpoints::from_config(*cfg));
  return cmd_sync(ctx, f, target, manifest, resolver);
}

void print_needs(Context& ctx, const models::NeedsResolution& r) {
  auto path = [](const models::ModelNeed& n, const std::string& folder) { return folder + "/" + n.name; };
  if (ctx.json()) {
    json missing = json::array(), present = json::array();
    for (const auto& m : r.missing)
      missing.push_back({{"folder", m.folder}, {"name", m.need.name}, {"where", m.need.where}, {"reason", m.reason}});
    for (const auto& p : r.present) present.push_back({{"folder", p.folder}, {"name", p.name}, {"where", p.where}});
    std::cout << json{{"missing", missing}, {"present_unmanaged", present}}.dump() << "\n";
    return;
  }
  for (const auto& p : r.present) std::cerr << "present (placed by hand): " << path(p, p.folder) << "\n";
  for (const auto& m : r.missing)
    std::cerr << "missing: " << path(m.need, m.folder) << " (" << m.need.where << "): " << m.reason << "\n";
}

// The models WORKFLOW needs, resolved against the manifest (if any), the models root and the
// urls the workflow embeds; synced; then not_found (exit 3) when any stayed unresolved.
core::Status cmd_sync_for(Context& ctx, const Flags& f) {
  if (f.prune)
    return core::fail(ErrorCode::invalid_argument, "--prune cannot go with --for",
                      "a workflow names only what it needs; prune with the full manifest: autopod models sync M --prune");
  TRY_ASSIGN(auto source, comfy::load_workflow(f.for_workflow));
  models::Manifest manifest;
  if (!f.for_manifest.empty()) {
    TRY_ASSIGN(manifest, models::load_manifest(f.for_manifest));
  }
  TRY_ASSIGN(auto cfg, ctx.config());
  TRY_ASSIGN(auto target, sync_target(ctx, f));
  auto transport = core::make_curl_transport();
  models::Resolver resolver(*transport, models::Endpoints::from_config(*cfg));
  TRY_ASSIGN(auto listing, models::list_target(target));
  TRY_ASSIGN(auto needs, models::resolve_needs(workflow_needs(source), manifest, listing, target.root, resolver));
  print_needs(ctx, needs);
  TRY(cmd_sync(ctx, f, target, needs.manifest, resolver));
  if (needs.missing.empty()) return {};
  return core::fail(ErrorCode::not_found,
                    std::to_string(needs.missing.size()) + " model file(s) " + f.for_workflow +
                        " needs could not be resolved (listed above with their folders)",
                    "add them to the manifest (--manifest) with those folders, or place them there by hand");
}

// Where a pod job's task runs: a scan's destination is the models root (empty pod: this machine,
// through `sh -c`), a download's is ROOT/FOLDER/NAME.
core::Result<models::SyncTarget> job_target(Context& ctx, const models::Task& t) {
  if (t.kind == "scan" && t.pod.empty())
    return models::SyncTarget{"", library_cli::local_exec(), t.destination};
  return pod_models_target(ctx, t.pod, (t.kind == "scan" ? t.destination
                                                         : t.destination.parent_path().parent_path()).string());
}

std::string what_of(const models::Task& t) {
  if (t.kind != "scan") return t.destination.string();
  return "scan of " + t.destination.string() + (t.entry.folder.empty() ? "" : "/" + t.entry.folder) + " (" +
         std::to_string(t.files_done) + "/" + std::to_string(t.files) + " files)";
}

core::Status cmd_tasks(Context& ctx) {
  TRY_ASSIGN(auto cfg, ctx.config());
  models::TaskStore store(cfg->home);
  TRY_ASSIGN(auto tasks, store.list());
  std::map<std::string, models::Task> jobs;  // job -> one of its tasks
  for (const auto& t : tasks)
    if (!t.job.empty() && !finished(models::to_string(t.state))) jobs[t.job] = t;
  for (const auto& [job, t] : jobs) {  // re-attach: read the pod-side state over ssh
    auto target = job_target(ctx, t);
    auto state = target ? models::SyncRun::attach(store, *target, job).refresh()
                        : core::Result<models::SyncProgress>(core::fail(target.error()));
    if (!state)
      std::cerr << "warning: cannot read job " << job << " on " << (t.pod.empty() ? "this machine" : t.pod) << ": "
                << state.error().message << "\n";
  }
  TRY_ASSIGN(tasks, store.list());
  if (ctx.json()) {
    for (const auto& t : tasks)
      std::cout << json{{"id", t.id}, {"source", t.entry.source.text}, {"destination", t.destination.string()},
                        {"state", models::to_string(t.state)}, {"bytes", t.bytes}, {"total", t.total},
                        {"bytes_per_sec", t.bytes_per_sec}, {"eta_secs", t.eta_secs},
                        {"connections", t.connections}, {"pod", t.pod}, {"error", t.error},
                        {"kind", t.kind.empty() ? "download" : t.kind}, {"files", t.files},
                        {"files_done", t.files_done}}.dump() << "\n";
    return {};
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "STATE", "PROGRESS", "WHERE", "FILE", "ERROR"}};
  for (const auto& t : tasks)
    rows.push_back({t.id, models::to_string(t.state), pct(t.bytes, t.total), t.pod.empty() ? "local" : t.pod,
                    what_of(t), t.error});
  print_table(rows);
  return {};
}

core::Status cmd_control(Context& ctx, const std::string& id, models::TaskControl control) {
  TRY_ASSIGN(auto cfg, ctx.config());
  models::TaskStore store(cfg->home);
  TRY_ASSIGN(auto task, store.get(id));
  if (!task.job.empty()) {
    TRY_ASSIGN(auto target, job_target(ctx, task));
    return models::SyncRun::attach(store, target, task.job, sync_options(*cfg, Flags{})).control(control);
  }
  TRY(store.request(id, control));
  if (control != models::TaskControl::resume && control != models::TaskControl::retry) return {};
  Display display(ctx.json());  // continues from the partial file
  auto run = models::SyncRun::local(store, {{}, {}, task.destination.parent_path().parent_path()}, {id},
                                    sync_options(*cfg, Flags{}));
  TRY(run.follow([&](const models::SyncProgress& p) { display.show(p.tasks); }));
  return {};
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
    c->add_option("--priority", f.priority, "higher downloads first, within 3 files at once (default 0)");
  };
  auto* sync = models->add_subcommand("sync", "make the models root hold what MANIFEST (or a workflow) lists");
  sync->add_option("MANIFEST", f.manifest, "manifest YAML");
  target(sync);
  sync->add_option("--for", f.for_workflow, "sync the models this workflow (API or editor format) needs");
  sync->add_option("--manifest", f.for_manifest, "with --for: the manifest to resolve the workflow's models against");
  sync->add_flag("--prune", f.prune, "remove files autopod placed that the manifest no longer lists");
  sync->add_flag("--dry-run", f.dry_run, "print the plan, change nothing");
  sync->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    if (!f.for_workflow.empty()) {
      if (!f.manifest.empty() && !f.pod.empty())
        return core::fail(ErrorCode::invalid_argument, "with --for, the manifest goes in --manifest M",
                          "autopod models sync --for flow.json [POD] [--manifest models.yaml]");
      if (!f.manifest.empty()) std::swap(f.pod, f.manifest);  // `sync --for W POD`: that one is the pod
      return cmd_sync_for(ctx, f);
    }
    if (f.manifest.empty())
      return core::fail(ErrorCode::invalid_argument, "models sync needs a MANIFEST or --for WORKFLOW.json",
                        "autopod models sync models.yaml [POD], or autopod models sync --for flow.json [POD]");
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
  models->add_subcommand("tasks", "list download and scan tasks (re-attaching to pod jobs)")
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
                                TRY_ASSIGN(auto t, pod_models_target(ctx, pod, root));
                                return ModelsRoot{t.exec, t.root.string(), t.pod};
                              });
  add_models_push_command(*models, ctx, exit_code);
}

}  // namespace autopod::agent
