#pragma once
// ComfyUI's HTTP API (see ../shared/reference/comfyui-api.md): health, system info, queue,
// history and queue control. Never sends an Origin header: ComfyUI answers 403 to a mismatched
// Origin on loopback, which a tunnel is.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.hpp"
#include "core/http.hpp"
#include "core/result.hpp"
#include "core/url.hpp"

namespace autopod::comfy {

struct Device {
  std::string name;
  std::string type;  // cuda, cpu, mps, ...
  std::uint64_t vram_total = 0;  // bytes
  std::uint64_t vram_free = 0;
};

struct SystemStats {
  std::string comfyui_version;  // empty on servers older than 2025-01
  std::string python_version;
  std::string pytorch_version;
  std::string os;
  std::uint64_t ram_total = 0;  // bytes
  std::uint64_t ram_free = 0;
  std::vector<Device> devices;
};

// One queue entry: [number, prompt_id, prompt, extra_data, outputs_to_execute, ...].
struct QueueItem {
  double number = 0;
  std::string prompt_id;
  int node_count = 0;
  std::string client_id;
};

struct QueueState {
  std::vector<QueueItem> running;  // at most one
  std::vector<QueueItem> pending;  // sorted by number (the server sends its heap unsorted)
};

// An accepted prompt. `node_errors` can be non-empty on success: outputs whose branches failed
// validation are skipped and the others run.
struct Submitted {
  std::string prompt_id;
  double number = 0;
  nlohmann::json node_errors;
};

// A 400 from POST /prompt as lines a user can act on: the error, then one line per node error
// with node id, class type, input and message.
std::string format_prompt_errors(const nlohmann::json& body);

// Every file an output node produced: any list of objects with a "filename" (images, gifs, audio,
// ...), as {filename, subfolder, type} plus the node id under "node".
std::vector<nlohmann::json> output_files(const nlohmann::json& history_entry);

// Where a server-given file reference lands under `dir`: subfolder components and the file name
// cleaned so that nothing escapes `dir` ("..", absolute paths, separators, control characters).
std::filesystem::path local_output_path(const std::filesystem::path& dir, const nlohmann::json& ref);

// Parses a /system_stats body; protocol error on a shape that is not one.
core::Result<SystemStats> parse_system_stats(const nlohmann::json& body);
core::Result<QueueState> parse_queue(const nlohmann::json& body);

// Makes a fresh HTTP connection (libcurl in production, a fake in tests).
using TransportFactory = std::function<std::unique_ptr<core::HttpTransport>()>;

// Talks to one ComfyUI. Not thread-safe: a thread that needs its own connection takes another().
class ComfyClient {
 public:
  // `url`: "http://127.0.0.1:8188", "http://[::1]:8188", "http://host/comfy" behind a proxy.
  // invalid_argument when it is not an http:// URL.
  static core::Result<ComfyClient> connect(const std::string& url, TransportFactory transports,
                                           core::Clock& clock);

  // The same server over a new connection (the run's download workers each take one).
  ComfyClient another() const;

  // GET /system_stats, the request bounded by `timeout`.
  core::Result<SystemStats> system_stats(std::chrono::milliseconds timeout = k_request_timeout);
  // Retries with backoff (0.25 s doubling to 4 s) until the server answers /system_stats or
  // `timeout` passes; each request's own timeout is clipped to what remains, so the wall time
  // stays within `timeout`. timeout error with the elapsed time and the last reason.
  core::Result<SystemStats> wait_ready(std::chrono::milliseconds timeout);
  core::Result<QueueState> queue();
  // Number of node classes (GET /object_info: expensive on the server, so only for `info`).
  core::Result<int> node_count();
  // The entry for one prompt ({} while queued or unknown), or the newest `max_items` entries.
  core::Result<nlohmann::json> history(const std::string& prompt_id, int max_items = 20);
  // The newest `max_items` entries in the server's order (oldest first), as (prompt id, entry).
  core::Result<std::vector<std::pair<std::string, nlohmann::json>>> history_list(int max_items);
  // Interrupts the running prompt; with an id, only if that prompt is the one running.
  core::Status interrupt(const std::string& prompt_id = {});
  // Removes pending prompts (the running one is not affected: use interrupt).
  core::Status cancel(const std::vector<std::string>& prompt_ids);
  core::Status free(bool unload_models, bool free_memory);
  // All node schemas (expensive on the server: for converting editor-format workflows), in the
  // server's key order, which is the widget order when a class has no input_order.
  core::Result<nlohmann::ordered_json> object_info();
  // POST /prompt with the socket's client id, so its events reach that socket. A 400 is an
  // invalid_argument error whose message lists every node error.
  core::Result<Submitted> submit(const nlohmann::json& prompt, const std::string& client_id,
                                 const nlohmann::json& extra_data = nlohmann::json::object());
  // POST /upload/image (type input); returns the name to put in the workflow ("sub/name").
  core::Result<std::string> upload(const std::filesystem::path& file);
  // GET /view for one output file, streamed into `dest` through a temporary file renamed into
  // place: nothing half-written is ever left at `dest`.
  core::Status download(const nlohmann::json& ref, const std::filesystem::path& dest);

  // The parsed URL: the run's WebSocket connects to its host and port under its path prefix.
  const core::Url& url() const { return m_url; }
  // "http://127.0.0.1:8188" (with a proxy's path prefix, without a trailing slash).
  const std::string& base_url() const { return m_base; }
  core::Clock& clock() const { return *m_clock; }

 private:
  ComfyClient(core::Url url, TransportFactory transports, core::Clock& clock);
  // The transport's send; a transport failure says ComfyUI is not reachable and what to check.
  core::Result<core::HttpResponse> send(const core::HttpRequest& req);
  core::Result<core::HttpResponse> request(const std::string& method, const std::string& path,
                                           const std::string& body = {},
                                           std::chrono::milliseconds timeout = k_request_timeout);
  core::Result<nlohmann::json> get_json(const std::string& path,
                                        std::chrono::milliseconds timeout = k_request_timeout);

  static constexpr std::chrono::milliseconds k_request_timeout{30000};

  core::Url m_url;
  std::string m_base;
  TransportFactory m_transports;
  std::unique_ptr<core::HttpTransport> m_transport;
  core::Clock* m_clock;
};

}  // namespace autopod::comfy
