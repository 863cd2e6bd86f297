#pragma once
// Model files for ComfyUI: manifests, sources (Hugging Face, Civitai, plain URLs) resolved to a
// download, the transfer engine (multi-connection, resumable, sha256-verified, atomic), the
// records of placed files, sync plans and persistent download tasks. Never prints or exits:
// failures are returned. Protocol facts: shared/reference/model-sources.md.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/home.hpp"
#include "core/http.hpp"
#include "core/result.hpp"
#include "core/retry.hpp"

namespace autopod::models {

// ComfyUI's model folder keys (comfyui-api.md §5), in the order they are listed to users.
const std::vector<std::string>& folder_keys();

enum class SourceKind { hugging_face, civitai, url };

// Where a file comes from, parsed once from what the user wrote (model-sources.md §1.1, §2.2).
struct Source {
  SourceKind kind = SourceKind::url;
  std::string text;       // as written, used to match placed-file records
  std::string repo_type;  // hf: "model", "dataset" or "space"
  std::string repo;       // hf: "owner/name"
  std::string revision;   // hf: branch, tag, commit or refs/pr/N; empty means "main"
  std::string path;       // hf: file path inside the repo (decoded)
  std::string model_id;   // civitai: when only the model is named, the latest version is used
  std::string version_id;
  std::string file_id;    // civitai: a pinned file (AIR "+id" or ?fileId=)
  std::string selectors;  // civitai: the download URL's type/format/size/fp query, verbatim
  std::string url;        // plain URL
};

// invalid_argument naming the forms accepted.
core::Result<Source> parse_source(const std::string& text);

// One line of a manifest. `folder` may be empty for Civitai until resolved (its model type).
struct ManifestEntry {
  Source source;
  std::string folder;
  std::string name;      // file name to place; empty: the source's
  std::string sha256;    // lowercase hex; empty: unknown (the hash on arrival is recorded)
  std::string file;      // civitai: file id, or a file type/format when a version has several
  std::string where;     // "models.yaml:4:5", for messages
};

struct Manifest {
  std::vector<ManifestEntry> entries;
};

// Parses manifest YAML; `origin` names it in messages (file:line:column). Refuses unknown
// folders (listing the valid ones) and names or folders that escape the models root.
core::Result<Manifest> parse_manifest(const std::string& yaml, const std::string& origin);
core::Result<Manifest> load_manifest(const std::filesystem::path& path);

// invalid_argument unless `name` is one plain file name (no separators, "..", NUL or
// control characters) and `folder` a known key: nothing may land outside the models root.
core::Status check_placement(const std::string& folder, const std::string& name);

// API base URLs and tokens. Tokens are sent only to the API host, never to storage.
struct Endpoints {
  std::string hf = "https://huggingface.co";
  std::string civitai = "https://civitai.com";
  std::string hf_token;
  std::string civitai_token;
  std::string user_agent = "autopod/0.1";  // never browser-like: Civitai answers HTML to those
  // HF_ENDPOINT, CIVITAI_ENDPOINT, HF_TOKEN and CIVITAI_API_TOKEN where set.
  static Endpoints from_env();
  // from_env(), with the tokens of config.yaml (hf.token, civitai.token) where the environment
  // sets none: the environment wins.
  static Endpoints from_config(const core::Config& config);
  // The token a ResolvedFile's `auth` names ("hf", "civitai"); empty for "" or when unset.
  std::string token_for(const std::string& auth) const;
};

// What to fetch, after resolution: a URL that carries no token, and what to expect from it.
struct ResolvedFile {
  std::string source;    // the manifest's source text
  std::string url;       // the final (possibly signed) URL; ranges are fetched from here
  std::string name;      // file name to place
  std::string folder;    // folder key
  std::int64_t size = -1;  // -1: unknown until the body arrives
  std::string sha256;    // lowercase hex; empty: unknown
  std::string validator; // ETag (or Last-Modified) for If-Range; empty: none
  std::string revision;  // hf commit, civitai version id
  bool ranges = false;   // the server answered a Range request with 206
  // Where a fresh signed URL comes from when `url` expires (the Hub's resolve URL, Civitai's
  // download endpoint, the plain URL itself), and which token that host takes: "hf", "civitai"
  // or "" (none). A token is sent only to `origin`'s host (model-sources.md §0.4).
  std::string origin;
  std::string auth;
};

// Turns manifest entries into ResolvedFiles over `http` (redirects resolved once, by hand;
// retries with backoff). Each refusal has its own message and hint: gated repos, Civitai login,
// early access with its deadline, archived, rate limits, HTML where a model was expected.
class Resolver {
 public:
  Resolver(core::HttpTransport& http, Endpoints endpoints,
           core::Clock& clock = core::system_clock(), core::RetryPolicy policy = {});
  core::Result<ResolvedFile> resolve(const ManifestEntry& entry);
  const Endpoints& endpoints() const { return m_endpoints; }

 private:
  core::HttpTransport& m_http;
  Endpoints m_endpoints;
  core::Clock& m_clock;
  core::RetryPolicy m_policy;
};

// A transfer's progress, reported from the engine's threads (serialised).
struct Progress {
  std::int64_t bytes = 0;  // verified-on-disk bytes so far, resumed ones included
  std::int64_t total = -1;
  double bytes_per_sec = 0;
  int connections = 0;
};

enum class StopKind { none, pause, cancel };

struct TransferOptions {
  int connections = 8;                         // per file; see README "Models" for why 8
  std::int64_t chunk_bytes = 16 << 20;         // ranges are fetched and recorded in these
  std::int64_t single_stream_below = 8 << 20;  // smaller files get one connection
  std::chrono::milliseconds stall_timeout{30000};  // no byte for this long: retry the range
  int range_attempts = 8;                      // per range; the count resets when bytes arrive
  core::BackoffSchedule backoff{std::chrono::milliseconds(250), std::chrono::milliseconds(8000)};
  std::string user_agent = "autopod/0.1";
  // A fresh URL when the signed one expired (403/410 mid-download); unset: such a range fails.
  std::function<core::Result<ResolvedFile>()> reresolve;
  // The token of the file's `auth` (Endpoints::token_for; run_task and apply_plan set it): sent
  // only with requests to the host of the file's `origin` (a private regular file the Hub
  // serves itself), never to storage; no redirect is followed with it. Empty: none.
  std::string token;
  std::function<void(const Progress&)> on_progress;
  // Polled while bytes move: pause keeps the partial file, cancel removes it.
  std::function<StopKind()> should_stop;
  // Bytes free for the destination's filesystem; unset: statvfs (a seam for tests).
  std::function<std::int64_t(const std::filesystem::path& dir)> free_bytes;
};

struct TransferResult {
  std::filesystem::path path;  // where the verified file now is
  std::int64_t size = 0;
  std::string sha256;
  std::int64_t bytes_fetched = 0;  // this run only: less than size after a resume
  bool resumed = false;
};

// Downloads `file` to `dest` through one uniquely named partial file beside it, written at
// offsets by several connections, with a state record beside it so another run resumes only
// the missing ranges. Checks free space first; verifies size then sha256 before the atomic
// rename. conflict when a live process owns a partial download of `dest`; cancelled on a stop
// (pause keeps the partial file); protocol on a hash mismatch (expected and actual named).
core::Result<TransferResult> download(const ResolvedFile& file, const std::filesystem::path& dest,
                                      const TransferOptions& options);

// SHA-256 of a file as lowercase hex (OpenSSL EVP); io when it cannot be read.
core::Result<std::string> sha256_file(const std::filesystem::path& path);

// What autopod knows about a file it placed: kept in "NAME.autopod.json" beside the model.
struct PlacedRecord {
  std::string source;
  std::string folder;
  std::string name;
  std::string revision;
  std::string etag;
  std::int64_t size = 0;
  std::int64_t mtime_ns = 0;  // of the model file when it was placed
  std::string sha256;
};

std::filesystem::path record_path(const std::filesystem::path& model_file);
// The record as written to its file (JSON with a "version"), for writers on the pod side too.
std::string record_text(const PlacedRecord& record);
// The source of a file `models push` sent from this machine ("push:NAME"): there is nowhere to
// fetch it again, so `sync --prune` leaves such files alone.
std::string pushed_source(const std::string& local_name);
bool is_pushed(const PlacedRecord& record);
core::Status write_record(const std::filesystem::path& model_file, const PlacedRecord& record);
// not_found when the model has no record.
core::Result<PlacedRecord> read_record(const std::filesystem::path& model_file);
// Every record under `root`'s folders, with the model file each belongs to.
std::vector<std::pair<std::filesystem::path, PlacedRecord>> list_records(
    const std::filesystem::path& root);

enum class Action { present, download, replace, prune };
const char* to_string(Action action);

struct PlanItem {
  Action action = Action::present;
  ManifestEntry entry;          // empty source for prune
  std::filesystem::path path;   // the model file
  std::optional<ResolvedFile> resolved;  // for download and replace
  std::int64_t bytes = 0;       // to download (or to remove, for prune)
};

struct SyncPlan {
  std::vector<PlanItem> items;
  std::int64_t download_bytes = 0;  // unknown sizes count as 0
  std::int64_t prune_bytes = 0;
  std::int64_t free_bytes = -1;     // room where the files land, from the listing; -1: unknown
  bool up_to_date() const;
};

enum class Prune { no, yes };

// What a models root holds, as the plan needs it: the records of placed files with the model
// file's size and mtime now (size -1: gone), every model file, and the free bytes there.
struct RootEntry {
  std::filesystem::path path;
  PlacedRecord record;
  std::int64_t size = -1;
  std::int64_t mtime_ns = 0;
};
struct RootListing {
  std::vector<RootEntry> placed;
  std::vector<std::filesystem::path> files;
  std::int64_t free_bytes = -1;  // -1: unknown
  // Folder keys whose files go elsewhere than root/KEY (the pod's extra_model_paths.yaml names
  // them; models/pod/autopod_paths.py decides which directory wins).
  std::map<std::string, std::filesystem::path> folder_dirs;
  // Where files of `folder` go: folder_dirs' entry, else root/folder.
  std::filesystem::path folder_dir(const std::filesystem::path& root, const std::string& folder) const;
};
// The listing of a models root on this machine (the pod's comes from models/pod.hpp).
RootListing list_root(const std::filesystem::path& root);

// Compares the manifest with `root`. A file is present when its record matches the source and
// the file's size and mtime match the record: nothing is hashed and nothing is resolved then.
core::Result<SyncPlan> plan_sync(const Manifest& manifest, const std::filesystem::path& root,
                                 Resolver& resolver, Prune prune);
core::Result<SyncPlan> plan_sync(const Manifest& manifest, const RootListing& listing,
                                 const std::filesystem::path& root, Resolver& resolver, Prune prune);

// Writes the record of a file `download()` just placed at `path`.
core::Status record_placed(const std::filesystem::path& path, const ResolvedFile& file,
                           const TransferResult& done);

// Carries out `plan`: downloads (recording each placed file) and, for prune items, removes the
// file and its record. Stops at the first failure.
core::Status apply_plan(const SyncPlan& plan, const std::filesystem::path& root,
                        const TransferOptions& options, Resolver& resolver);

enum class TaskState { queued, resolving, running, paused, verifying, done, failed, cancelled };
const char* to_string(TaskState state);

// One download as another terminal sees it. Holds no token: sources name files, and tokens come
// from the environment of the process that runs the task.
struct Task {
  std::string id;
  ManifestEntry entry;            // what to fetch (source, folder, name, sha256, file)
  std::filesystem::path destination;
  TaskState state = TaskState::queued;
  std::int64_t bytes = 0;
  std::int64_t total = -1;
  double bytes_per_sec = 0;
  std::int64_t eta_secs = -1;
  int connections = 0;
  int priority = 0;
  std::string error;
  std::string control;            // "pause" or "cancel", asked by another process
  std::string updated_at;
  std::string pod;                // set when the task runs on a pod: its name, and
  std::string job;                // the pod-side job that runs it (models/pod.hpp)
  // "" for a download; "scan" for `models scan --hash` (library.hpp): then `destination` is the
  // models root, entry.folder the folder scanned (empty: all), bytes/total the bytes hashed of
  // the files' sizes, and these count files (a cached file counts done without a read).
  std::string kind;
  int files = 0, files_done = 0;
};

enum class TaskControl { pause, resume, cancel, retry };

// Tasks in AUTOPOD_HOME/tasks/tasks.json (locked, atomic: core::StateFile), shared by every
// autopod process of the user.
class TaskStore {
 public:
  explicit TaskStore(const core::Home& home);
  core::Result<Task> add(const ManifestEntry& entry, const std::filesystem::path& destination,
                         int priority = 0);
  core::Result<std::vector<Task>> list() const;
  // not_found naming the known ids.
  core::Result<Task> get(const std::string& id) const;
  core::Status put(const Task& task);
  // pause and cancel are picked up by the running worker within half a second (cancel of a
  // task not running ends it at once); resume and retry queue a paused or failed task again.
  // conflict when the task's state does not allow it.
  core::Status request(const std::string& id, TaskControl control);
  // The tasks of pod job `job` that did not end done go back to queued: the job was resumed on
  // the pod, and `models tasks` follows it again.
  core::Status requeue_job(const std::string& job);

 private:
  std::filesystem::path m_path;
};

// Runs task `id` in this process through resolving, running, verifying and done (or failed,
// paused, cancelled), writing its progress to the store and honouring requests from others.
core::Result<TransferResult> run_task(TaskStore& store, const std::string& id, Resolver& resolver,
                                      const TransferOptions& options);

}  // namespace autopod::models
