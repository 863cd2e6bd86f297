#pragma once
// `comfy run`: submit a workflow and follow it to its outputs on disk.
//
// The WebSocket is opened with a fresh client id before the first prompt is submitted, so no
// event is missed. It is pinged (ComfyUI sends no heartbeat) and reconnected with backoff when
// it drops; a reconnect first completes the old socket's close, because ComfyUI silences a new
// socket when an older one with the same id closes. A watchdog asks /history/{id} and /queue
// whenever the socket is silent, after every reconnect, and when an outcome arrives without
// its end, so a run never hangs and never misses its completion. A run ends with
// `executing {node: null}` for its prompt id (sent after the history entry is stored); outputs
// are then read from /history/{id} and downloaded through /view by a pool of workers.

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comfy/events.hpp"
#include "core/result.hpp"

namespace autopod::comfy {

struct RunRequest {
  nlohmann::json prompt;  // API format, edits applied
  int count = 1;          // queue this many runs, seeds varied
  bool random_seed = false;
  std::filesystem::path out_dir;  // empty: ./outputs/<prompt id>/
  bool wait = true;               // false: submit, report the ids and return
  std::chrono::milliseconds timeout{0};  // for everything; 0: no limit
  std::chrono::milliseconds watchdog{3000};  // socket silence before asking over HTTP
  std::chrono::milliseconds ping_interval{10000};
  int download_workers = 4;
  nlohmann::json extra_data = nlohmann::json::object();
};

struct RunResult {
  RunState state;
  std::vector<std::filesystem::path> files;  // saved outputs
  std::vector<std::string> download_errors;
};

struct RunHooks {
  // All of a run's outputs are on disk (benchmarks time this).
  std::function<void(const std::string& prompt_id)> on_outputs_saved;
};

// Runs `request` against the ComfyUI at `base_url` ("http://127.0.0.1:8188"). Fails only when
// the runs could not be submitted or followed (unreachable, rejected with its node errors,
// --timeout); the outcome of each run is in its RunResult.
core::Result<std::vector<RunResult>> run_workflow(const std::string& base_url, const RunRequest& request,
                                                  Display& display, const RunHooks& hooks = {});

}  // namespace autopod::comfy
