#pragma once
// The RunPod provider over REST v2 (https://api.runpod.io/v2/...).

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.hpp"
#include "core/http.hpp"
#include "core/retry.hpp"
#include "providers/provider.hpp"

namespace autopod::providers::runpod {

struct RunpodOptions {
  std::string api_url = "https://api.runpod.io";  // paths start with /v2/
  std::string api_key;                            // secret; sent only as a Bearer header
  core::RetryPolicy retry;  // for reads, stops and deletes
  // How long a create keeps retrying 5xx and lost answers (within any deadline): a time, not a
  // count, so that an API failing half its requests still gets the create through.
  std::chrono::milliseconds create_budget{std::chrono::minutes(3)};
  // What the pods carry for the next layer: autopod's key (pushed to every pod it creates) and
  // where ComfyUI's models are (empty: <the pod's mount path, else mount_path>/ComfyUI/models).
  std::filesystem::path ssh_key;
  std::string models_root;
  std::string mount_path = "/workspace";
};

// Retries 429 (after Retry-After), 5xx and lost connections with backoff; creates pods on a
// fresh connection and, when an answer is lost, looks the pod up by name before trying again.
std::unique_ptr<Provider> make_runpod_provider(
    RunpodOptions options, std::unique_ptr<core::HttpTransport> transport, core::Clock& clock,
    std::function<void(const std::string&)> progress = {});

}  // namespace autopod::providers::runpod
