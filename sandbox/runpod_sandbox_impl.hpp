#pragma once
// Internal to sandbox/: the RunPod sandbox's state, its parts in runpod_sandbox.cpp (set-up,
// faults, the test API), runpod_sandbox_pods.cpp (pods: create, actions, their JSON) and
// runpod_sandbox_routes.cpp (authentication, the REST routes, volumes, /_sandbox control).

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/text.hpp"
#include "sandbox/http_server.hpp"
#include "sandbox/runpod_sandbox.hpp"

namespace autopod::sandbox {
namespace runpod_detail {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

inline const char* k_capacity_detail =
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again.";

struct GpuInfo {
  const char* id;
  const char* name;
  const char* pool;
  int memory;
  double secure;
  double community;
};

inline const GpuInfo k_gpus[] = {
    {"NVIDIA GeForce RTX 4090", "RTX 4090", "ADA_24", 24, 0.69, 0.34},
    {"NVIDIA RTX A5000", "RTX A5000", "AMPERE_24", 24, 0.27, 0.16},
    {"NVIDIA RTX A6000", "RTX A6000", "AMPERE_48", 48, 0.49, 0.33},
    {"NVIDIA L40S", "L40S", "ADA_48_PRO", 48, 0.86, 0.79},
    {"NVIDIA A40", "A40", "AMPERE_48", 48, 0.40, 0.35},
    {"NVIDIA H100 80GB HBM3", "H100 SXM", "HOPPER_141", 80, 2.69, 2.39},
};

struct DcInfo {
  const char* id;
  const char* name;
  const char* region;
};

inline const DcInfo k_dcs[] = {{"EU-RO-1", "Europe Romania 1", "EUROPE"},
                               {"US-KS-2", "US Kansas 2", "NORTH_AMERICA"},
                               {"CA-MTL-1", "Canada Montreal 1", "NORTH_AMERICA"}};

inline HttpReply problem(int status,
                         const std::string& title,
                         const std::string& detail,
                         std::vector<std::string> errors = {}) {
  json body = {{"title", title}, {"status", status}, {"detail", detail}};
  if (!errors.empty())
    body["errors"] = errors;
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "application/problem+json";
  r.body = body.dump();
  return r;
}

inline HttpReply ok(int status, const json& body) {
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "application/json";
  r.body = body.dump();
  return r;
}

inline HttpReply no_content() {
  HttpReply r;
  r.status = 204;
  return r;
}

struct SandboxPod {
  json spec;  // the v2 fields that came from the create body
  std::string id;
  std::string status;
  Clock::time_point phase_since;
  std::string started_at;
  int ssh_port = 0;
};

}  // namespace runpod_detail

struct RunpodSandbox::Impl {
  using json = nlohmann::json;
  using SandboxPod = runpod_detail::SandboxPod;
  using Clock = runpod_detail::Clock;
  SandboxOptions options;
  mutable std::mutex mutex;
  std::map<std::string, SandboxPod> pods;
  std::map<std::string, json> volumes;
  struct ActiveFault {
    Fault fault;
    int seen = 0;  // matching requests so far (every_other)
  };
  std::vector<ActiveFault> faults;
  std::set<std::pair<std::string, std::string>> no_capacity;
  bool host_gpus_free = true;
  double balance = 100.0;
  json requests = json::array();
  std::mt19937 rng{12345};
  HttpServer server{[this](const HttpExchange& ex) { return handle(ex); }};

  static std::vector<std::string> unknown_keys(const json& obj,
                                               std::set<std::string> allowed,
                                               const std::string& prefix) {
    std::vector<std::string> errors;
    for (const auto& [k, v] : obj.items())
      if (!allowed.count(k))
        errors.push_back(prefix + k + ": unknown property (not allowed)");
    return errors;
  }

  std::string new_id(std::size_t len);
  bool has_capacity(const std::string& gpu, const std::string& dc) const;
  int fresh_ssh_port();
  // Moves pods along PROVISIONING -> STARTING -> RUNNING as time passes.
  void advance(SandboxPod& pod);
  json pod_json(SandboxPod& pod);
  std::optional<HttpReply> check_auth(const HttpExchange& ex);
  // The v2 CreatePodRequest schema, strictly (unevaluatedProperties: false).
  static std::vector<std::string> validate_create(const json& b);
  HttpReply create_pod(const json& b);
  HttpReply pod_action(SandboxPod& pod, const json& b);
  HttpReply create_volume(const json& b);
  HttpReply route(const HttpExchange& ex, const json& body);
  HttpReply control(const HttpExchange& ex, const json& body);
  json snapshot_locked();
  HttpReply with_rate_headers(HttpReply r);
  // The fault that applies to this request, if any; counts it down.
  std::optional<Fault> take_fault(const HttpExchange& ex);
  HttpReply fault_reply(const Fault& fault);
  HttpReply handle(const HttpExchange& ex);
};

}  // namespace autopod::sandbox
