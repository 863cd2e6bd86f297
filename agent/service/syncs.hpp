#pragma once
// Internal to agent/service/: model-sync tasks (POST /v1/models/sync). Each is followed on its own
// thread through models/sync.hpp: the manifest (or the models a workflow needs, resolved as
// `autopod models sync --for` does) planned against the pod's models root, one detached pod job
// started, its bytes followed into the task's progress. The job id is kept in the task, so after
// a restart the task re-attaches to the job on the pod.

#include <string>

#include "agent/service/followers.hpp"
#include "agent/service/service.hpp"
#include "agent/service/store.hpp"

namespace autopod::agent::service {

class Syncs {
 public:
  Syncs(TaskStore& store, PodAccess& pods, const ServiceOptions& options);
  ~Syncs();  // stop()

  // Checks a POST /v1/models/sync body ({manifest | for_workflow, pod?, webhook?, metadata?}) and
  // records its task, queued. invalid_argument naming the field (a malformed manifest with its
  // line and column, a saved workflow that is missing).
  core::Result<Task> create(const nlohmann::json& body);
  // Follows the task on its own thread: planned and started, or re-attached to its pod job.
  void start(const std::string& id);
  // Cancels the pod job as `autopod models cancel` does (partial files removed) and ends the task
  // `cancelled`. not_found, conflict when it has finished, the pod's errors.
  core::Result<Task> cancel(const std::string& id);
  // Stops following (the pod job keeps running) and joins the threads.
  void stop();

 private:
  void run(const std::string& id);
  core::Status run_sync(const Task& task);
  core::Result<models::Manifest> manifest_of(const Task& task,
                                             const models::SyncTarget& target,
                                             models::Resolver& resolver,
                                             nlohmann::json& sync);
  void progress(const std::string& id, const models::SyncProgress& p);
  void finish(const std::string& id, const models::SyncProgress& p);

  TaskStore& m_store;
  PodAccess& m_pods;
  const ServiceOptions& m_options;
  models::TaskStore m_files;  // the per-file tasks, shared with `autopod models tasks`
  Followers m_followers;      // last: its threads are joined first
};

}  // namespace autopod::agent::service
