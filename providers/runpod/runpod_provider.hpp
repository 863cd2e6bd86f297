#pragma once
// The RunPod provider over REST v2 (https://api.runpod.io/v2/...).

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
  core::RetryPolicy retry;
};

// Retries 429 (after Retry-After), 5xx and lost connections with backoff; creates pods on a
// fresh connection and, when an answer is lost, looks the pod up by name before trying again.
std::unique_ptr<Provider> make_runpod_provider(
    RunpodOptions options, std::unique_ptr<core::HttpTransport> transport, core::Clock& clock,
    std::function<void(const std::string&)> progress = {});

}  // namespace autopod::providers::runpod
