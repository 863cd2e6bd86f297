#pragma once
// A ComfyUI look-alike on loopback for the routes autopod uses, faithful to
// ../shared/reference/comfyui-api.md and the recorded transcript of ComfyUI 0.3.64: every route
// at /X and /api/X, {} for unknown history ids, an empty 403 for a mismatched Origin on
// loopback, 500 text/plain for malformed JSON, an unsorted pending queue, empty 200 bodies for
// queue control. Faults: refuse the first N requests (a server still starting), slow answers.

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace autopod::sandbox {

class ComfyFake {
 public:
  ComfyFake();
  ~ComfyFake();
  core::Status start(int port = 0);  // 127.0.0.1
  std::string url() const;
  int port() const;

  // Queue contents, as a running ComfyUI would hold them.
  void set_running(const std::string& prompt_id, const nlohmann::json& prompt);
  void add_pending(const std::string& prompt_id, double number, const nlohmann::json& prompt);
  void add_history(const std::string& prompt_id, const nlohmann::json& entry);

  // Faults.
  void refuse_first(int requests);  // drop the connection without answering, like a booting server
  void delay_answers(std::chrono::milliseconds delay);

  // What the fake saw.
  nlohmann::json last_free() const;      // the last POST /free body
  int interrupts() const;                // interrupts that hit a running prompt
  bool saw_origin_header() const;        // any request carried Origin

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace autopod::sandbox
