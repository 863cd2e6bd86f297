#pragma once
// autopod maintain: one pass of upkeep over every pod autopod knows, for cron and systemd timers.
// Tunnels (dead entries removed, a running pod's dead tunnel restarted, a gone pod's stopped),
// ComfyUI health (restart command over ssh after a grace period), idle auto-down measured from
// ComfyUI itself, and a daily spend guard. Never acts on a pod it cannot see clearly.

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/context.hpp"
#include "core/home.hpp"

namespace autopod::agent::maintain {

using WallTime = std::chrono::system_clock::time_point;

// The wall clock of maintain and of the activity records. Tests move it with the environment
// variable AUTOPOD_TEST_NOW_OFFSET_S (seconds added to the real time); nothing else sets it.
WallTime now();

// Records that an autopod command used `pod_id`'s ComfyUI at `when` (Home::activity()), so that
// maintain does not take the pod for idle. Failures are returned; callers may ignore them.
core::Status record_activity(const core::Home& home, const std::string& pod_id, WallTime when);

// The states a provider bills for: provisioning, starting and running (RunPod bills a pod from
// its start, image download included).
bool billed(providers::PodStatus status);

// Records, for the spend guard, that a command (connect, start, stop, down) changed a pod's state
// at `when`: `ran_until_now` says whether the pod was running until now (that time counts toward
// today's spend), `after` what it is now (running time is counted again only while it runs).
// Updates the pod's entry in Home::maintain_state() under its lock. Callers may ignore failures.
core::Status record_pod_change(const core::Home& home,
                               const providers::Pod& pod,
                               bool ran_until_now,
                               providers::PodStatus after,
                               WallTime when);

struct Options {
  bool dry_run = false;                       // decide and report, change nothing
  std::chrono::seconds provider_timeout{60};  // bounds the provider's calls and their retries
  std::chrono::seconds comfy_timeout{10};     // each ComfyUI request
};

// What one pod looked like and what maintain did about it.
struct PodReport {
  std::string id;
  std::string name;
  std::string status;                    // the provider's, or "gone"/"unknown"
  std::optional<double> uptime_minutes;  // since created, when the provider says
  std::string comfyui;                   // up, down, starting, not running, no tunnel, unknown
  std::optional<int> queue_running;
  std::optional<int> queue_pending;
  std::optional<double> idle_minutes;
  double spend_today = 0;         // USD since local midnight
  std::string decision = "none";  // none, down, stop, notify, restart-comfyui, no-decision
  std::string reason;             // why (or why not)
  std::vector<std::string> did;   // what was done (or would be, with --dry-run)
  std::string error;              // what failed while acting, or why no decision
};

struct Report {
  std::vector<PodReport> pods;
  std::vector<std::string> tunnels;  // what was done to tunnels ("restarted t-1 for comfy", ...)
  double spend_today = 0;            // all pods, this local day
  double daily_budget = 0;           // 0: off
  bool over_budget = false;
  bool unclear = false;        // some pod got no decision (provider error, 429, timeout)
  bool action_failed = false;  // an action was decided but failed
  bool dry_run = false;
  std::string error;  // why no pod got a decision (the provider could not list)
};

nlohmann::json to_json(const Report& report);

// One pass. Takes no lock (the command does). Fails only when nothing could be looked at
// (config, state files); a provider failure is a report whose pods have no decision.
core::Result<Report> run(Context& ctx, const Options& options);

}  // namespace autopod::agent::maintain
