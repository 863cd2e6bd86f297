#pragma once
// One sync of a manifest onto a models root, for the CLI and the agent service alike: plan it
// against the root (on a pod through its PodExec, or on this machine), start the downloads (one
// detached pod job, or worker threads here), follow them with progress, control them, and
// re-attach to a pod job by its id from any process. Never prints or exits.
//
//   TRY_ASSIGN(auto plan, plan_on(target, manifest, resolver, Prune::no));
//   TRY(check_space(plan, target));
//   TRY_ASSIGN(auto run, SyncRun::start(store, target, plan));   // a task per file in `store`
//   TRY_ASSIGN(auto last, run.follow(on_progress));               // until every file has ended

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/library.hpp"
#include "models/models.hpp"
#include "models/pod.hpp"

namespace autopod::models {

// Where a sync places files: a models root on a pod, reached through `exec`, or on this machine.
struct SyncTarget {
  std::string pod;             // the pod's name, kept in tasks and messages; empty: this machine
  PodExec exec;                // set for a pod; unset: `root` is on this machine
  std::filesystem::path root;  // the models root
  bool on_pod() const { return static_cast<bool>(exec); }
};

// A sync's progress over all its files, as the pod job or the local workers report it.
struct SyncProgress {
  std::int64_t bytes = 0;  // on disk so far, resumed bytes included
  std::int64_t total = 0;  // of the sizes known so far (an unknown size counts 0)
  double bytes_per_sec = 0;
  std::int64_t eta_secs = -1;  // -1: unknown
  int files = 0;               // files this run downloads
  int files_done = 0;
  bool finished = false;    // every file has ended (done, failed, paused or cancelled)
  std::vector<Task> tasks;  // each file's task as it stands
};
using SyncProgressFn = std::function<void(const SyncProgress&)>;

struct SyncOptions {
  int connections = 8;                  // per file
  int priority = 0;                     // higher first when files wait for one of the 3 slots
  std::chrono::milliseconds poll{500};  // between two looks at the job's state
  // Files at once under the models root, counted with every other process and pod job there
  // (<root>/.autopod/slots, as pod jobs do): a local sync waits for a free one, the highest
  // priority first, then the one queued earliest. A pod job is started with the same limit.
  int parallel = 3;
  // Hubs and tokens: local re-resolves, and the tokens a pod job gets on stdin (to re-resolve an
  // expired URL, fetch a private file). Unset: Endpoints::from_env().
  std::optional<Endpoints> endpoints;
  int tolerated_failures = 0;  // follow(): failed looks at a pod job in a row before giving up
};

// What the models root holds (records, files, free bytes): the pod's over ssh, else this machine's.
core::Result<RootListing> list_target(const SyncTarget& target);

// plan_sync against the target's listing; the plan's free_bytes is the room there.
core::Result<SyncPlan> plan_on(const SyncTarget& target,
                               const Manifest& manifest,
                               Resolver& resolver,
                               Prune prune);

// io naming both numbers when the plan's downloads need more room than the target has.
core::Status check_space(const SyncPlan& plan, const SyncTarget& target);

// A model file something needs (a workflow's loader input or embedded `models` entry; the agent
// makes these from comfy::model_references): a folder key, the name ComfyUI will look up, and
// where known a url and sha256.
struct ModelNeed {
  std::string folder;
  std::string name;
  std::string url;
  std::string sha256;
  std::string where;  // for messages: "flow.json: node 4 CheckpointLoaderSimple.ckpt_name"
};

struct MissingModel {
  ModelNeed need;
  std::string folder;  // the folder key it belongs in
  std::string reason;
};

// What a list of needs comes to against a manifest and a models root.
struct NeedsResolution {
  Manifest manifest;                  // what to sync: matching manifest entries, then embedded urls
  std::vector<ModelNeed> present;     // already in the root, placed by hand (no manifest entry)
  std::vector<MissingModel> missing;  // none of the above, each with why
};

// Resolves each need, first match wins: (1) a manifest entry that places the same folder and
// name (its `name:`, else the source's own file name or the name its placed record gives;
// Civitai entries and others whose name only resolving tells are resolved over `resolver`, and
// only when a need is still open), (2) a file already at root/folder/name in `listing`: present
// when placed by hand, else an entry from its record (planned present, nothing fetched), (3) the
// need's own url (its sha256 kept), else missing. A need naming a subfolder or an unknown folder
// is missing with that reason. Errors only from the resolver for a manifest entry.
core::Result<NeedsResolution> resolve_needs(const std::vector<ModelNeed>& needs,
                                            const Manifest& manifest,
                                            const RootListing& listing,
                                            const std::filesystem::path& root,
                                            Resolver& resolver);

// A started sync: its files as tasks in the TaskStore, and on a pod the job that runs them.
class SyncRun {
 public:
  // Removes the plan's prune items, then starts its downloads: on a pod as one detached job
  // (the pod checks the room first: io naming the numbers), here as queued tasks that follow()
  // runs. Each file gets a task in `store` (with the pod and job when on a pod). A plan with
  // nothing to download starts nothing: job() is empty and follow() returns at once.
  static core::Result<SyncRun> start(TaskStore& store,
                                     SyncTarget target,
                                     const SyncPlan& plan,
                                     SyncOptions options = {});
  // `models scan --hash` on the target as one detached job (library.hpp start_scan_job; on this
  // machine too, through a `sh -c` exec) and one task of kind "scan" in `store` that follow(),
  // control() and attach() treat like a sync's. invalid_argument for a target without an exec.
  static core::Result<SyncRun> scan(TaskStore& store,
                                    SyncTarget target,
                                    const ScanRequest& request,
                                    SyncOptions options = {});
  // The pod job `job`, started earlier by this or another process; its tasks are the store's
  // tasks of that job.
  static SyncRun attach(TaskStore& store,
                        SyncTarget target,
                        std::string job,
                        SyncOptions options = {});
  // Local tasks `ids` (queued again by resume or retry), continued from their partial files.
  static SyncRun local(TaskStore& store,
                       SyncTarget target,
                       std::vector<std::string> ids,
                       SyncOptions options = {});

  const std::string& job() const { return m_job; }
  const std::vector<std::string>& task_ids() const { return m_ids; }

  // One look: the pod job's state read over ssh and merged into the store's tasks (or the local
  // tasks as the store holds them). not_found when the pod no longer has the job. With `wait`,
  // the pod answers when the job ends or after `wait` (pod_status).
  core::Result<SyncProgress> refresh(std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  // Looks every `poll` (on a pod: one look that waits up to `poll` there, so the end is seen at once) until every file has ended or `keep` turns false, calling `on_progress`
  // after each look (up to tolerated_failures looks in a row may fail, e.g. ssh dropping; a job
  // the pod no longer has fails at once); on this machine it runs the downloads meanwhile (then `keep` is not asked:
  // stop them with control()). Returns the last look; remote naming the first failed file (with
  // its error) when one failed.
  core::Result<SyncProgress> follow(const SyncProgressFn& on_progress = {},
                                    const std::function<bool()>& keep = {});
  // Pauses or cancels every file: a pod job stops within half a second (cancel removes the
  // partial files; the store then holds the job's new states, looked at for up to 2 s), local
  // workers at their next poll. Resume/retry start a pod job again, its tasks queued.
  core::Status control(TaskControl control);

 private:
  SyncRun(TaskStore& store, SyncTarget target, SyncOptions options)
      : m_store(&store), m_target(std::move(target)), m_options(std::move(options)) {}
  core::Result<SyncProgress> run_local(const SyncProgressFn& on_progress);
  SyncProgress progress_of(std::vector<Task> tasks) const;

  TaskStore* m_store;
  SyncTarget m_target;
  SyncOptions m_options;
  std::string m_job;
  std::vector<std::string> m_ids;
  std::vector<std::optional<ResolvedFile>> m_resolved;  // local: what each task's plan resolved
};

}  // namespace autopod::models
