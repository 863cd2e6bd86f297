#pragma once
// A ComfyUI look-alike on loopback, faithful to ../shared/reference/comfyui-api.md and to the
// transcript recorded from ComfyUI 0.3.64 (../shared/reference/comfyui-transcript.json).
//
// HTTP: every route at /X and /api/X; /system_stats, /prompt (validation with the real error
// bodies, a number counter that rejected requests also consume), /queue (the pending heap
// unsorted), /interrupt, /free, /history ({} for unknown ids), /object_info, /view (400 for
// `..`, 403 for an escaping subfolder, 404), /upload/image (reuse, "name (1)" numbering,
// overwrite, 413); an empty 403 for a mismatched Origin on loopback; 500 text/plain for
// malformed JSON.
//
// WebSocket /ws: the greeting status frame with the sid, the feature-flag handshake, per-prompt
// events only to the submitting client id (progress, progress_state, previews and interrupts
// broadcast when there is none), the exact frame order of §4.4, binary preview (type 1 or 4)
// and text (type 3) frames, no pings and no replay, and the same-clientId reconnect trap of
// §4.1 (a closing older socket silences the newer one).
//
// A worker thread "executes" prompts over a small node catalogue (EmptyImage, LoadImage,
// ImageInvert, SaveImage, PreviewImage, CheckpointLoaderSimple, CLIPTextEncode,
// EmptyLatentImage, KSampler with one progress step per `steps`, VAEDecode, Canny which raises,
// GetImageSize which sends progress text, PreviewAny), caching node outputs by their inputs as
// the real executor does, writing real PNG files.

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace autopod::sandbox {

class ComfyFake {
 public:
  ComfyFake();
  ~ComfyFake();
  // Listens on address:port (0: a free port); "::1" for IPv6 loopback.
  core::Status start(int port = 0, const std::string& address = "127.0.0.1");
  std::string url() const;
  int port() const;
  std::filesystem::path base_dir() const;  // holds input/, output/ and temp/

  // Queue contents, as a running ComfyUI would hold them (for tests of the read-only commands).
  void set_running(const std::string& prompt_id, const nlohmann::json& prompt);
  void add_pending(const std::string& prompt_id, double number, const nlohmann::json& prompt);
  void add_history(const std::string& prompt_id, const nlohmann::json& entry);

  // Execution.
  void hold_queue(bool hold);                        // queue prompts without running them
  void set_step_delay(std::chrono::milliseconds d);  // per KSampler step (default 0)
  void set_previews(bool on);                        // sampler previews (--preview-method auto)

  // Faults.
  void refuse_first(int requests);
  // Answer WebSocket upgrades with this HTTP status (403: the origin check's empty answer, as a
  // proxy adding Origin provokes; 401/407 an authenticating proxy; 404); 0 accepts again.
  void refuse_websocket(int http_status);  // drop the connection without answering, like a booting server
  void delay_answers(std::chrono::milliseconds delay);
  // Cut the submitting socket (no close frame) just before the next event of this type.
  void drop_socket_before(const std::string& event_type);
  // Send execution_success, then store history 200 ms later (the thread race of §4.4).
  void success_before_history(bool on);
  // Report outputs under names that escape their directories (as a misbehaving custom node
  // might); /view still applies the server's own checks to them.
  void escaping_output_names(bool on);
  // Interrupt the running prompt when its sampler reaches this step, as another client would.
  void interrupt_at_step(int step);
  // Called with each per-prompt event (type, data) just before it is sent, on the fake's thread
  // and under its lock: for benchmarks that time what follows a frame. Keep it quick.
  void on_event_sent(std::function<void(const std::string& type, const nlohmann::json& data)> f);
  // Stop and start again on the same port: connections cut, queue, history and temp files lost.
  core::Status restart();

  // What the fake saw.
  nlohmann::json last_free() const;          // the last POST /free body
  int interrupts() const;                    // interrupts that hit a running prompt
  bool saw_origin_header() const;            // any request carried Origin
  std::vector<nlohmann::json> submitted() const;  // accepted POST /prompt bodies, in order
  int websocket_connections() const;        // upgrades accepted so far
  // When execution_success was sent for each prompt id (steady clock).
  std::map<std::string, std::chrono::steady_clock::time_point> success_times() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace autopod::sandbox
