#pragma once
// A RunPod REST v2 look-alike on loopback: pods, network volumes and the GPU catalog in memory,
// following ../shared/reference/runpod-api.md (status codes, problem+json bodies, strict
// create validation, state transitions over time), with fault injection for tests.

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace autopod::sandbox {

struct SandboxOptions {
  std::string api_key;  // required bearer token; empty accepts any non-empty token
  // Where pods' direct SSH points. With a real sshd (SshdHarness) pods are reachable for real.
  std::string ssh_host = "127.0.0.1";
  int ssh_port = 0;  // 0: a made-up port per start (nothing answers there)
  std::string ssh_user = "root";
  // PUBLIC_KEY of each created pod is appended here, as RunPod's images do.
  std::filesystem::path authorized_keys;
  std::chrono::milliseconds provisioning_time{300};  // PROVISIONING -> STARTING
  std::chrono::milliseconds starting_time{300};      // STARTING -> RUNNING
};

// One injected fault. Matches requests by method and path prefix; applies `count` times.
//   kind "status":      answer `status` with a problem+json body (and Retry-After for 429)
//   kind "drop":        close the connection without answering, doing nothing
//   kind "lost_answer": carry the request out, then close the connection without answering
//   kind "slow":        answer normally after `delay_ms`
//   kind "malformed":   answer 200 with a body that is not JSON
//   kind "every_other": of the matching requests the 1st, 3rd, 5th... answer `status` and do
//                       nothing (502/504: an HTML gateway page, as Cloudflare sends); the others
//                       pass. `count` is how many it fails.
// A 422 "status" carries an errors[] list, as RunPod's schema check does.
// Also settable over HTTP: POST /_sandbox/faults with this object as JSON.
struct Fault {
  std::string method;  // empty: any
  std::string path;    // prefix, e.g. "/v2/pods"
  std::string kind;
  int status = 500;
  int retry_after_secs = 1;
  int delay_ms = 0;
  int count = 1;
};

class RunpodSandbox {
 public:
  explicit RunpodSandbox(SandboxOptions options);
  ~RunpodSandbox();

  core::Status start(const std::string& address = "127.0.0.1", int port = 0);
  void stop();
  std::string url() const;
  int port() const;

  void add_fault(const Fault& fault);
  // No capacity for `gpu` ("*": all) in `dc` ("*": all).
  void set_capacity(const std::string& gpu, const std::string& dc, bool available);
  // When false, stopped pods cannot start again (their host's GPU was rented out).
  void set_host_gpus_free(bool free);
  void set_balance(double usd);
  // {"pods": [...v2 pods], "volumes": [...], "requests": [{"method","path"}...]}
  nlohmann::json snapshot() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace autopod::sandbox
