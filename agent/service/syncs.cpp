// Model-sync tasks: request to placed files through models/sync.hpp (see syncs.hpp).

#include "agent/service/syncs.hpp"

#include <algorithm>

#include "agent/model_sync.hpp"
#include "agent/service/generations.hpp"
#include "core/http.hpp"
#include "core/log.hpp"
#include "core/random.hpp"

namespace autopod::agent::service {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

namespace {

// `manifest`: YAML text, or the same as a JSON object (JSON is YAML).
core::Result<models::Manifest> request_manifest(const json& manifest) {
  if (manifest.is_string())
    return models::parse_manifest(manifest.get<std::string>(), "manifest");
  if (manifest.is_object())
    return models::parse_manifest(manifest.dump(), "manifest");
  return fail(ErrorCode::invalid_argument,
              "manifest must be manifest YAML text or a manifest object",
              "{\"models\": [{\"source\": \"hf://org/repo/file.safetensors\", \"folder\": "
              "\"checkpoints\"}]}");
}

bool has_state(const models::SyncProgress& p, models::TaskState state) {
  return std::any_of(p.tasks.begin(), p.tasks.end(),
                     [&](const models::Task& t) { return t.state == state; });
}

}  // namespace

core::Result<models::SyncTarget> PodAccess::models_target(const std::string&) {
  return fail(ErrorCode::unsupported, "this agent cannot reach a pod's models root");
}

Syncs::Syncs(TaskStore& store, PodAccess& pods, const ServiceOptions& options)
    : m_store(store), m_pods(pods), m_options(options), m_files(options.home) {}

Syncs::~Syncs() {
  stop();
}

core::Result<Task> Syncs::create(const json& body) {
  if (!body.is_object())
    return fail(ErrorCode::invalid_argument, "the body must be a JSON object");
  if (!body.contains("manifest") && !body.contains("for_workflow"))
    return fail(
        ErrorCode::invalid_argument, "manifest or for_workflow is required",
        "send a manifest (YAML text or object), a workflow (object or saved name), or both");
  Task t;
  t.id = core::random_hex(32);
  t.kind = "model-sync";
  t.request = json::object();
  if (body.contains("manifest")) {
    TRY(request_manifest(body["manifest"]));
    t.request["manifest"] = body["manifest"];
  }
  if (body.contains("for_workflow")) {
    TRY(workflow_source(body["for_workflow"], m_options.home.workflows(), m_options.home.tasks()));
    t.request["for_workflow"] = body["for_workflow"];
  }
  TRY_ASSIGN(t.webhook, webhook_of(body));
  TRY_ASSIGN(t.pod, pod_of(body));
  t.metadata = body.value("metadata", json());
  t.created_at = t.updated_at = std::chrono::system_clock::now();
  t.progress.current_step = "Waiting to start...";
  TRY(m_store.add(t));
  return t;
}

void Syncs::start(const std::string& id) {
  m_followers.start(id, [this, id] { run(id); });
}

void Syncs::stop() {
  m_followers.stop();
}

void Syncs::run(const std::string& id) {
  auto task = m_store.get(id);
  if (!task || is_final(task->status))
    return;
  auto st = run_sync(*task);
  if (!st && m_followers.following(id))
    fail_task(m_store, id, st.error());
}

core::Result<models::Manifest> Syncs::manifest_of(const Task& task,
                                                  const models::SyncTarget& target,
                                                  models::Resolver& resolver,
                                                  json& sync) {
  models::Manifest manifest;
  const json& r = task.request;
  if (r.contains("manifest")) {
    TRY_ASSIGN(manifest, request_manifest(r["manifest"]));
  }
  if (!r.contains("for_workflow"))
    return manifest;
  TRY_ASSIGN(auto source, workflow_source(r["for_workflow"], m_options.home.workflows(),
                                          m_options.home.tasks()));
  TRY_ASSIGN(auto listing, models::list_target(target));
  TRY_ASSIGN(auto needs, models::resolve_needs(workflow_needs(source), manifest, listing,
                                               target.root, resolver));
  for (const auto& m : needs.missing)
    sync["missing"].push_back({{"folder", m.folder},
                               {"name", m.need.name},
                               {"where", m.need.where},
                               {"reason", m.reason}});
  for (const auto& p : needs.present)
    sync["present"].push_back({{"path", (target.root / p.folder / p.name).string()},
                               {"folder", p.folder},
                               {"name", p.name}});
  return needs.manifest;
}

core::Status Syncs::run_sync(const Task& task) {
  const std::string id = task.id;
  TRY_ASSIGN(auto target, m_pods.models_target(task.pod));
  models::SyncOptions options;
  options.poll = m_options.sync_poll;
  options.tolerated_failures = 20;  // ten seconds of an unreachable pod at the default poll
  options.endpoints =
      m_options.model_endpoints ? *m_options.model_endpoints : models::Endpoints::from_env();
  std::string job = task.sync.is_object() ? task.sync.value("job", "") : "";
  std::optional<models::SyncRun> run;
  if (!job.empty()) {
    run = models::SyncRun::attach(m_files, target, job, options);  // after a restart
  } else {
    m_store.update(id, [](Task& t) -> const char* {
      t.status = TaskStatus::in_progress;
      t.progress.current_step = "Planning...";
      return "progress";
    });
    auto transport = core::make_curl_transport();
    models::Resolver resolver(*transport, *options.endpoints);
    json sync = {
        {"job", ""}, {"pod", target.pod}, {"present", json::array()}, {"missing", json::array()}};
    TRY_ASSIGN(auto manifest, manifest_of(task, target, resolver, sync));
    TRY_ASSIGN(auto plan, models::plan_on(target, manifest, resolver, models::Prune::no));
    for (const auto& item : plan.items)
      if (item.action == models::Action::present)
        sync["present"].push_back({{"path", item.path.string()},
                                   {"folder", item.path.parent_path().filename().string()},
                                   {"name", item.path.filename().string()}});
    TRY(models::check_space(plan, target));
    if (!m_followers.following(id))
      return {};
    TRY_ASSIGN(auto started, models::SyncRun::start(m_files, target, plan, options));
    run = std::move(started);
    sync["job"] = run->job();
    m_store.update(id, [&](Task& t) -> const char* {
      t.sync = sync;
      return "";
    });
    if (!m_followers.following(id)) {  // cancelled while it started: take the job back at once
      (void)run->control(models::TaskControl::cancel);
      return {};
    }
  }
  auto last = run->follow([&](const models::SyncProgress& p) { progress(id, p); },
                          [&] { return m_followers.following(id); });
  if (!m_followers.following(id))
    return {};
  if (!last)
    return fail(last.error());
  finish(id, *last);
  return {};
}

void Syncs::progress(const std::string& id, const models::SyncProgress& p) {
  m_store.update(id, [&](Task& t) -> const char* {
    if (is_final(t.status))
      return nullptr;
    Progress next = t.progress;
    next.bytes = p.bytes, next.total_bytes = p.total, next.bytes_per_second = p.bytes_per_sec;
    next.percentage = p.total > 0
                          ? static_cast<int>(std::min<std::int64_t>(100, p.bytes * 100 / p.total))
                      : p.files > 0 ? p.files_done * 100 / p.files
                                    : 0;
    next.current_value = p.files_done, next.max_value = p.files;
    next.eta_seconds =
        p.eta_secs >= 0 ? std::optional<double>(static_cast<double>(p.eta_secs)) : std::nullopt;
    next.current_step =
        has_state(p, models::TaskState::verifying) ? "Verifying files..."
        : p.files == 0                             ? "Up to date"
                       : "Downloading " + std::to_string(p.files - p.files_done) + " file(s)...";
    if (next == t.progress && t.status == TaskStatus::in_progress)
      return nullptr;
    t.status = TaskStatus::in_progress;
    t.progress = next;
    return "progress";
  });
}

void Syncs::finish(const std::string& id, const models::SyncProgress& p) {
  m_store.update(id, [&](Task& t) -> const char* {
    if (is_final(t.status))
      return nullptr;
    // Paused or cancelled on the pod (`autopod models pause|cancel`): this task will not place
    // them.
    if (has_state(p, models::TaskState::cancelled) || has_state(p, models::TaskState::paused)) {
      t.status = TaskStatus::cancelled;
      return "cancelled";
    }
    json files = json::array();
    std::int64_t downloaded = 0;
    for (const auto& f : p.tasks) {
      files.push_back({{"path", f.destination.string()},
                       {"folder", f.destination.parent_path().filename().string()},
                       {"name", f.destination.filename().string()},
                       {"state", "downloaded"},
                       {"bytes", f.bytes}});
      downloaded += f.bytes;
    }
    const json sync = t.sync.is_object() ? t.sync : json::object();
    for (const auto& present : sync.value("present", json::array())) {
      json f = present;
      f["state"] = "present", f["bytes"] = nullptr;
      files.push_back(f);
    }
    t.status = TaskStatus::completed;
    t.progress.percentage = 100;
    t.progress.current_step = "Done";
    t.progress.eta_seconds = 0;
    t.result = {{"files", files},
                {"missing", sync.value("missing", json::array())},
                {"pod", sync.value("pod", t.pod)},
                {"job", sync.value("job", json())},
                {"downloadedBytes", downloaded}};
    return "completed";
  });
}

core::Result<Task> Syncs::cancel(const std::string& id) {
  return m_followers.cancel(m_store, id, [&](const Task& task) -> core::Status {
    std::string job = task.sync.is_object() ? task.sync.value("job", "") : "";
    if (job.empty())
      return {};  // not started yet; run_sync takes back a job it starts from now on
    TRY_ASSIGN(auto target, m_pods.models_target(task.pod));
    return models::SyncRun::attach(m_files, target, job).control(models::TaskControl::cancel);
  });
}

}  // namespace autopod::agent::service
