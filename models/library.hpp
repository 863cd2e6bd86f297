#pragma once
// The model library on a models root: header parsers for untrusted model files (safetensors,
// GGUF), recognition of what a file is from its tensor names and shapes, the sidecars peer tools
// keep beside a model, and the pod-side listing that sends only header bytes. Never prints or
// exits: failures are returned. Facts: shared/reference/model-sources.md §4 (formats,
// recognition) and §5 (sidecars).

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/http.hpp"
#include "core/result.hpp"
#include "core/retry.hpp"
#include "models/models.hpp"
#include "models/pod.hpp"

namespace autopod::models {

// The most header bytes autopod reads of one file: 16 MiB (Civitai's scanner's cap; real
// headers are KiB to a few MiB). The format itself allows 100,000,000 (§4.1).
inline constexpr std::uint64_t k_header_read_cap = 16u << 20;
// What `models ls` asks the pod for per file in its one round trip: 64 KiB. A safetensors header
// larger than that (full SDXL checkpoints: ~200 KiB) is fetched in one more batched request.
inline constexpr std::uint64_t k_header_first_read = 64u << 10;

struct Tensor {
  std::string name;
  std::string dtype;                 // "F16", "BF16", "F8_E4M3", ...
  std::vector<std::int64_t> shape;   // at most 8 dimensions
  std::uint64_t begin = 0, end = 0;  // [begin, end) in the data buffer
};

// A parsed safetensors header (§4.1): 8-byte LE length N, N bytes of JSON, then the data.
struct SafetensorsHeader {
  std::uint64_t header_length = 0;              // N
  std::map<std::string, std::string> metadata;  // __metadata__ (string -> string only)
  std::vector<Tensor> tensors;                  // sorted by begin
  std::uint64_t data_bytes = 0;                 // the largest data end
  // The size a complete file has: 8 + N + the largest data end.
  std::uint64_t expected_size() const { return 8 + header_length + data_bytes; }
  const Tensor* find(std::string_view name) const;
};

// The header length N from a file's first 8 bytes; protocol ("malformed: ...") when fewer than
// 8 bytes, N < 2 or N > 100,000,000 (then it is not safetensors).
core::Result<std::uint64_t> safetensors_header_length(std::string_view first_bytes);

// Parses `bytes` (the file's first 8 + N bytes or more; more are ignored) and checks the header
// the way the reference library does: a JSON object no deeper than 3, no duplicate names, every
// tensor {dtype, shape, data_offsets}, offsets contiguous from 0 with no gaps or overlaps, each
// tensor's byte count matching dtype x shape, __metadata__ string -> string. Any failure is
// protocol with "malformed safetensors header: <what>". invalid_argument when `bytes` holds less
// than 8 + N (the message gives N: read that much and call again). Never allocates more than a
// small multiple of `bytes`.
core::Result<SafetensorsHeader> parse_safetensors_header(std::string_view bytes);

// A parsed GGUF header (§4.3): magic "GGUF", version (1..3), tensor and KV counts, the metadata
// KVs and, when the bytes reach them, the tensor infos.
struct GgufHeader {
  std::uint32_t version = 0;
  std::uint64_t tensor_count = 0, kv_count = 0;
  std::string architecture;                     // general.architecture ("flux", "sdxl", ...)
  std::int64_t file_type = -1;                  // general.file_type (llama.cpp ftype), -1: absent
  std::string quantization;                     // the most common tensor type ("Q4_K", "F16"), or
                                                // the file type's name; empty: unknown
  std::map<std::string, std::string> metadata;  // scalar and string KVs (strings cut at 256 bytes)
  std::vector<std::string> tensor_names;        // as far as the bytes reached
  bool complete = false;                        // every KV and tensor info was within the bytes
};

// Parses the start of a GGUF file. Bytes that end early give a partial header (complete false);
// protocol "malformed gguf header: <what>" for a wrong magic or version, counts above 2^24,
// strings or arrays longer than the format allows, unknown value types or arrays nested deeper
// than 2.
core::Result<GgufHeader> parse_gguf_header(std::string_view bytes);

// What a model file is, as far as its header tells; "unknown" is never replaced by a guess.
enum class ModelKind {
  checkpoint,
  diffusion_model,
  lora,
  vae,
  text_encoder,
  controlnet,
  upscaler,
  embedding,
  unknown
};
const char* to_string(ModelKind kind);

struct Recognition {
  ModelKind kind = ModelKind::unknown;
  std::string architecture = "unknown";  // "sdxl", "flux", "sd1", "clip-l", "t5-xxl", ...
  std::string variant;    // "dev", "schnell", "refiner", "inpaint", "large", "16ch", "lycoris", ...
  std::string base;       // a LoRA's or ControlNet's base architecture ("sdxl", "flux", ...)
  std::string precision;  // "fp16", "bf16", "fp8", "fp32", a GGUF quantization; empty: unknown
  bool pickle = false;    // .ckpt/.pt/.pth/.bin/.pkl: loading it can run code
};

// Recognises a safetensors file from its tensor names, shapes and metadata (§4.2).
Recognition recognise(const SafetensorsHeader& header);
// Recognises a GGUF file from general.architecture, its tensor names and quantization.
Recognition recognise(const GgufHeader& header);
// A file that has no header autopod reads, by its extension and ComfyUI folder (§4.3):
// pickles flagged, upscalers in upscale_models, anything else unknown.
Recognition recognise_by_name(const std::string& file_name, const std::string& folder);

// One model file under a models root, as `models ls` and `models info` show it.
struct LibraryFile {
  std::string path;      // on the machine that holds it
  std::string relative;  // to the models root ("loras/sdxl/x.safetensors")
  std::string folder;    // the ComfyUI folder: the first directory under the root, or the key
                         // extra_model_paths.yaml files the directory under (comfyui-api.md §5.1)
  std::string extra_dir;  // that directory when the yaml's; empty: under the root
  std::int64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::string format;  // "safetensors", "gguf" or the extension ("ckpt", "pth", ...)
  Recognition recognition;
  // "complete" (size == 8 + N + last data end), "incomplete" (shorter: a cut download),
  // "malformed" (the header fails its checks, or bytes follow the data), "-" when the format
  // cannot tell.
  std::string completeness = "-";
  std::string problem;                 // why incomplete or malformed
  std::string sha256;                  // from the hash cache or autopod's record; empty: unknown
  std::vector<std::string> sidecars;   // names beside it sharing its stem (§5)
  std::string preview;                 // the sidecar a viewer shows first; empty: none
  std::optional<PlacedRecord> record;  // when autopod placed it (NAME.autopod.json)
  std::map<std::string, std::string> metadata;  // safetensors __metadata__ or GGUF KVs
  std::size_t tensor_count = 0;
  std::map<std::string, std::size_t> dtypes;         // tensors per dtype
  std::map<std::string, std::string> sidecar_texts;  // info: metadata sidecars' text (256 KiB each)
};

struct LibraryListing {
  std::vector<LibraryFile> files;  // sorted by folder, then path
  std::uint64_t header_bytes = 0;  // header bytes received in all
  int round_trips = 0;             // requests to the machine holding the root
};

struct LibraryQuery {
  std::string folder;              // only this folder; empty: every folder
  std::vector<std::string> paths;  // only these files (relative to the root, or absolute)
  bool sidecar_texts = false;
};

// Lists the model files under `root` and the directories extra_model_paths.yaml beside it names
// (labelled with their folder key: LibraryFile::extra_dir) on the machine `exec` reaches (the
// pod, or this machine with `sh -c`): one request that returns up to 64 KiB of header per file, and one more for
// all safetensors headers larger than that (up to k_header_read_cap). remote with the pod's
// message for a path outside the root or a missing root.
core::Result<LibraryListing> list_library(const PodExec& exec,
                                          const std::string& root,
                                          const LibraryQuery& query);

// The hash cache (models/pod/autopod_scan.py): STEM.sha256 beside the model holds the bare hex
// digest, as pysssss reads it (§5); <root>/.autopod/hashes.json keys it by the model's real path,
// size and mtime. A hash is reused only while size and mtime are the recorded ones and STEM.sha256
// still holds it.
struct HashedFile {
  std::string path;
  std::string sha256;            // empty when `error`
  bool cached = false;           // the hash came from the cache: no byte read
  std::uint64_t bytes_read = 0;  // model bytes read to hash it
  std::string error;             // why this file could not be hashed (a scan job goes on)
};

// Hashes every model under `root` and the extra_model_paths.yaml folders (or `paths`) on that
// machine in one request, reading a file only when the cache misses, and writes the cache
// (temp + rename).
core::Result<std::vector<HashedFile>> hash_library(const PodExec& exec,
                                                   const std::string& root,
                                                   const std::vector<std::string>& paths);

// What a scan job hashes: every model under the root and the extra_model_paths.yaml folders, or
// only `folder`, or only `paths`.
struct ScanRequest {
  std::string folder;
  std::vector<std::string> paths;
  std::int64_t max_bytes_per_sec = 0;  // > 0: the read rate cap (a running ComfyUI keeps its disk)
};

// Starts a scan on that machine as one detached job of the sync job machinery (pod_status,
// pod_control pause/cancel/resume; sync.hpp's SyncRun::scan makes it a task); returns its id.
// remote with the pod's message for a missing root or a path outside it.
core::Result<std::string> start_scan_job(const PodExec& exec,
                                         const std::string& root,
                                         const ScanRequest& request);
// The files scan job `job` has done so far, in its order (one more request: the progress that
// pod_status reads leaves them out). not_found when the machine has no such job.
core::Result<std::vector<HashedFile>> scan_results(const PodExec& exec,
                                                   const std::string& root,
                                                   const std::string& job);

// Sets keys of the model's STEM.metadata.json (Lora-Manager's format; other keys kept) and/or
// writes STEM.preview.EXT from `preview_file` on this machine; each written atomically.
// Returns the files written. invalid_argument for a key without "=" or an unreadable image.
core::Result<std::vector<std::string>> write_meta(const PodExec& exec,
                                                  const std::string& root,
                                                  const std::string& path,
                                                  const std::vector<std::string>& sets,
                                                  const std::string& preview_file);

// Removes each model and every sidecar sharing its stem; checks every path first (a model file
// under the root), so a refusal removes nothing. Returns what was removed.
core::Result<std::vector<std::string>> remove_models(const PodExec& exec,
                                                     const std::string& root,
                                                     const std::vector<std::string>& paths);

// Civitai's version JSON for a file's sha256 (GET /api/v1/model-versions/by-hash, §2.3), or
// nullopt when Civitai knows no such file (404). 429 and 5xx are retried per `policy`, then
// rate_limited / remote.
core::Result<std::optional<nlohmann::json>> civitai_by_hash(
    core::HttpTransport& http,
    const Endpoints& endpoints,
    const std::string& sha256,
    core::Clock& clock = core::system_clock(),
    const core::RetryPolicy& policy = {});
// The bytes of a public preview image (at most 16 MiB; no token is sent).
core::Result<std::string> fetch_preview(core::HttpTransport& http,
                                        const Endpoints& endpoints,
                                        const std::string& url,
                                        core::Clock& clock = core::system_clock(),
                                        const core::RetryPolicy& policy = {});

// Writes sidecars beside the model at `path` in one request, each atomically: `files` maps a
// suffix after the stem (".civitai.info") to its text, overwriting; `preview` (ext, bytes) is
// written as STEM.preview.EXT only when the model has no preview yet. Returns what was written.
core::Result<std::vector<std::string>> write_sidecars(
    const PodExec& exec,
    const std::string& root,
    const std::string& path,
    const std::map<std::string, std::string>& files,
    const std::optional<std::pair<std::string, std::string>>& preview);

}  // namespace autopod::models
