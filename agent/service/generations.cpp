// Generations: following a task's run to its outputs, cancelling, and the per-pod limit (see
// generations.hpp).

#include "agent/service/generations.hpp"

#include "comfy/workflow.hpp"
#include "core/http.hpp"
#include "core/log.hpp"

namespace autopod::agent::service {

namespace fs = std::filesystem;
using core::ErrorCode;
using core::fail;
using nlohmann::json;

Generations::Generations(TaskStore& store, PodAccess& pods, const ServiceOptions& options)
    : m_store(store), m_pods(pods), m_options(options), m_steps(options.step_names) {}

Generations::~Generations() { stop(); }

void Generations::start(const std::string& id) {
  m_followers.start(id, [this, id] { run(id); });
}

void Generations::stop() {
  m_followers.stop();
}

// A running slot on `pod` (max_running_per_pod), waited for; false when the task was cancelled
// or the service stops meanwhile.
bool Generations::acquire_slot(const std::string& pod, const std::string& id) {
  if (m_options.max_running_per_pod <= 0) return true;
  return m_followers.wait_to_take(id, [&] {
    if (m_running[pod] >= m_options.max_running_per_pod) return false;
    ++m_running[pod];
    return true;
  });
}

void Generations::release_slot(const std::string& pod) {
  if (m_options.max_running_per_pod <= 0) return;
  m_followers.changed([&] { --m_running[pod]; });
}

void Generations::run(const std::string& id) {
  auto task = m_store.get(id);
  if (!task || is_final(task->status)) return;
  auto keep = [this, id] { return m_followers.following(id); };
  if (!acquire_slot(task->pod, id)) return;
  auto st = run_fresh(*task, keep);
  release_slot(task->pod);
  if (!st && m_followers.following(id)) fail_task(m_store, id, st.error());
}

core::Status Generations::run_fresh(const Task& task, const std::function<bool()>& keep) {
  TRY_ASSIGN(auto url, m_pods.comfy_url(task.pod));
  TRY_ASSIGN(auto client, comfy::ComfyClient::connect(url, core::make_curl_transport, core::system_clock()));
  comfy::RunRequest request;
  fs::path out = m_options.home.outputs() / task.id;
  if (!task.prompt_ids.empty()) {
    // Submitted before a restart: follow those prompts again; outputs are fetched anew.
    std::error_code ec;
    fs::remove_all(out, ec);
    request.prompt = task.prompt;
    request.attach = task.prompt_ids;
  } else {
    const json& r = task.request;
    TRY_ASSIGN(auto source, workflow_source(r.at("workflow"), m_options.home.workflows(),
                                            m_options.home.tasks() / (task.id + ".inputs")));
    comfy::RunOptions options;
    options.sets = r.value("set", std::vector<std::string>{});
    for (const auto& p : r.value("inputs", std::vector<std::string>{})) options.inputs.emplace_back(p);
    options.count = r.value("count", 1);
    TRY_ASSIGN(request, comfy::prepare_run(client, source, options, [&](const std::string& line) {
      core::logger("agent")->info("task {}: {}", task.id, line);
    }));
    m_store.update(task.id, [&](Task& t) -> const char* {
      t.prompt = request.prompt;
      return "";
    });
  }
  request.options.out_dir = out;
  request.client_id = task.client_id;
  request.download_workers = 1;
  request.watchdog = m_options.comfy_watchdog;
  if (!keep()) return {};
  return follow(task, client, request, keep);
}

core::Status Generations::follow(const Task& task, comfy::ComfyClient& client, const comfy::RunRequest& request,
                                 const std::function<bool()>& keep) {
  comfy::RunHooks hooks;
  hooks.keep_following = keep;
  std::string base = client.base_url();
  hooks.on_submitted = [this, id = task.id, base](const comfy::RunState& run) {
    m_store.update(id, [&](Task& t) -> const char* {
      if (std::find(t.prompt_ids.begin(), t.prompt_ids.end(), run.prompt_id) == t.prompt_ids.end())
        t.prompt_ids.push_back(run.prompt_id);
      return "";
    });
    bool is_cancelled = m_followers.cancelled(id);
    // Cancelled while it was being submitted: take it back at once.
    if (auto c = comfy::ComfyClient::connect(base, core::make_curl_transport, core::system_clock()); is_cancelled && c) {
      (void)c->cancel({run.prompt_id});
      (void)c->interrupt(run.prompt_id);
    }
  };
  TaskDisplay display(m_store, task.id, m_steps);
  auto results = comfy::run_workflow(client, request, display, hooks);
  if (!keep()) return {};
  finish(task.id, request, results);
  return {};
}

}  // namespace autopod::agent::service
