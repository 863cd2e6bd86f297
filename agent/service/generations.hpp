#pragma once
// Internal to agent/service/: generation tasks from request to outputs. Each task is followed on
// its own thread through comfy/run.hpp (prepare_run → run_workflow → summarize); after a restart
// a task whose prompts were submitted attaches to them with the same WebSocket client id.

#include <map>
#include <string>

#include "agent/service/followers.hpp"
#include "agent/service/progress.hpp"
#include "agent/service/service.hpp"
#include "agent/service/store.hpp"
#include "comfy/run.hpp"

namespace autopod::agent::service {

class Generations {
 public:
  Generations(TaskStore& store, PodAccess& pods, const ServiceOptions& options);
  ~Generations();  // stop()

  // Checks a POST /v1/generations body and records its task, queued. invalid_argument naming the
  // field (or the saved workflow that is missing) when the body is not a valid request.
  core::Result<Task> create(const nlohmann::json& body);
  // Follows the task on its own thread: from the start, or attached to its prompts.
  void start(const std::string& id);
  // Removes its prompts from ComfyUI's queue or interrupts the running one, and ends the task
  // `cancelled`. not_found, conflict when it has finished, ComfyUI's errors.
  core::Result<Task> cancel(const std::string& id);
  // Stops following every task (the prompts keep running) and joins the threads.
  void stop();

 private:
  void run(const std::string& id);
  core::Status run_fresh(const Task& task, const std::function<bool()>& keep);
  core::Status follow(const Task& task, comfy::ComfyClient& client, const comfy::RunRequest& request,
                      const std::function<bool()>& keep);
  void finish(const std::string& id, const comfy::RunRequest& request,
              const core::Result<std::vector<comfy::RunResult>>& results);
  bool acquire_slot(const std::string& pod, const std::string& id);
  void release_slot(const std::string& pod);

  TaskStore& m_store;
  PodAccess& m_pods;
  const ServiceOptions& m_options;
  StepNames m_steps;
  std::map<std::string, int> m_running;  // per pod, when max_running_per_pod (under m_followers)
  Followers m_followers;                 // last: its threads are joined first
};

// A workflow source from the request's `workflow`: an object, or the name of a saved workflow
// under `workflows`. invalid_argument naming the problem.
core::Result<comfy::WorkflowSource> workflow_source(const nlohmann::json& workflow,
                                                    const std::filesystem::path& workflows,
                                                    const std::filesystem::path& base_dir);

// A request's `webhook` (empty: none) and `pod` (empty: the agent's default); invalid_argument
// when the webhook is not an http(s) URL or the pod not a string.
core::Result<std::string> webhook_of(const nlohmann::json& body);
core::Result<std::string> pod_of(const nlohmann::json& body);

}  // namespace autopod::agent::service
