// Generations: how a run ends as a task (completed with its images, or error with the failing
// node), and cancelling (see generations.hpp).

#include <cmath>

#include "agent/service/generations.hpp"
#include "comfy/workflow.hpp"
#include "core/http.hpp"

namespace autopod::agent::service {

namespace fs = std::filesystem;
using core::ErrorCode;
using core::fail;
using nlohmann::json;

namespace {

json seed_of(const json& prompt) {
  auto seeds = comfy::seed_inputs(prompt);
  if (seeds.empty()) return nullptr;
  return prompt[seeds[0].first]["inputs"][seeds[0].second];
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The first run that did not succeed, as the API's error object.
json run_error(const std::vector<comfy::RunResult>& results, const core::Error& summary) {
  for (const auto& r : results) {
    const auto& s = r.state;
    if (s.outcome == comfy::Outcome::success) continue;
    json e = {{"message", summary.message}, {"details", comfy::describe_failure(s)}, {"nodeId", nullptr},
              {"nodeType", nullptr}};
    if (s.error.is_object()) {
      if (!str(s.error, "node_id").empty()) e["nodeId"] = str(s.error, "node_id");
      if (!str(s.error, "node_type").empty()) e["nodeType"] = str(s.error, "node_type");
      if (!str(s.error, "exception_message").empty())
        e["message"] = str(s.error, "exception_type") + ": " + str(s.error, "exception_message");
    }
    if (e["details"].get<std::string>().empty()) {
      std::string details;
      for (const auto& d : r.download_errors) details += d + "\n";
      e["details"] = details.empty() ? summary.hint : details;
    }
    return e;
  }
  return {{"message", summary.message}, {"details", summary.hint}, {"nodeId", nullptr}, {"nodeType", nullptr}};
}

}  // namespace

void Generations::finish(const std::string& id, const comfy::RunRequest& request,
                         const core::Result<std::vector<comfy::RunResult>>& results) {
  if (!results) return fail_task(m_store, id, results.error());
  auto summary = comfy::summarize(*results, request.options);
  if (!summary.status) {
    json error = run_error(*results, summary.status.error());
    m_store.update(id, [&](Task& t) -> const char* {
      if (is_final(t.status)) return nullptr;
      t.status = TaskStatus::error;
      t.error = error;
      return "error";
    });
    return;
  }
  fs::path dir = request.options.out_dir;
  json images = json::array();
  for (const auto& f : summary.files) images.push_back(image_entry(id, dir, f));
  double seconds = 0;
  for (const auto& r : *results) {
    const auto& s = r.state;
    if (s.outcome_at > s.origin()) seconds += std::chrono::duration<double>(s.outcome_at - s.origin()).count();
  }
  m_store.update(id, [&](Task& t) -> const char* {
    if (is_final(t.status)) return nullptr;
    t.status = TaskStatus::completed;
    t.progress.percentage = 100;
    t.progress.eta_seconds = 0;
    t.progress.current_step = "Done";
    t.result = {{"images", images},
                {"promptId", results->empty() ? "" : results->front().state.prompt_id},
                {"seed", seed_of(request.prompt)},
                {"workflow", t.workflow_name.empty() ? json() : json(t.workflow_name)},
                {"executionTime", std::round(seconds * 10) / 10}};
    return "completed";
  });
}

core::Result<Task> Generations::cancel(const std::string& id) {
  return m_followers.cancel(m_store, id, [&](const Task& task) -> core::Status {
    if (task.prompt_ids.empty()) return {};  // none submitted; the submit hook takes back a late one
    TRY_ASSIGN(auto url, m_pods.comfy_url(task.pod));
    TRY_ASSIGN(auto client, comfy::ComfyClient::connect(url, core::make_curl_transport, core::system_clock()));
    TRY_ASSIGN(auto queue, client.queue());
    auto ours = [&](const std::string& prompt_id) {
      return std::count(task.prompt_ids.begin(), task.prompt_ids.end(), prompt_id) > 0;
    };
    std::vector<std::string> pending;
    for (const auto& q : queue.pending)
      if (ours(q.prompt_id)) pending.push_back(q.prompt_id);
    if (!pending.empty()) TRY(client.cancel(pending));
    for (const auto& q : queue.running)
      if (ours(q.prompt_id)) TRY(client.interrupt(q.prompt_id));
    return {};
  });
}

}  // namespace autopod::agent::service
