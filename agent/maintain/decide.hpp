#pragma once
// Internal to agent/maintain/: maintain's memory of each pod between runs and the decisions
// made from it, as pure functions of what was seen and the time (unit-tested without pods).

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "agent/maintain/maintain.hpp"
#include "core/config.hpp"
#include "providers/provider.hpp"

namespace autopod::agent::maintain {

// Seconds since the epoch: what maintain.json stores.
using Epoch = std::int64_t;
Epoch to_epoch(WallTime t);
// Local midnight that began the day of `t`, and that day as "YYYY-MM-DD".
Epoch local_midnight(WallTime t);
std::string local_day(WallTime t);
// "2026-11-25T12:34:56Z", "2026-11-25 12:34:56.789 +0000 UTC" (UTC); nullopt otherwise.
std::optional<Epoch> parse_utc(const std::string& text);

// What maintain remembers of one pod (maintain.json, by pod id).
struct PodMemory {
  std::string name;
  Epoch first_seen = 0;
  Epoch last_activity = 0;     // ComfyUI busy, its history grew, or an autopod command used it
  std::string history_sig;     // the newest history entries' ids, to see growth
  Epoch comfy_down_since = 0;  // 0: not seen down
  Epoch restarted_at = 0;      // the restart command last ran
  std::string day;             // the local day running_secs is for
  double running_secs = 0;     // running time seen that day
  double cost_per_hr = 0;
  Epoch last_seen = 0;
  std::string last_status;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PodMemory,
                                                name,
                                                first_seen,
                                                last_activity,
                                                history_sig,
                                                comfy_down_since,
                                                restarted_at,
                                                day,
                                                running_secs,
                                                cost_per_hr,
                                                last_seen,
                                                last_status)

enum class Health { up, down, starting, not_running, no_tunnel, unknown };
std::string to_string(Health health);

// What ComfyUI said, through the pod's tunnel.
struct ComfyView {
  Health health = Health::unknown;
  std::string detail;  // why down or unknown
  int running = 0;
  int pending = 0;
  std::string history_sig;
};

// maintain's settings, resolved from `maintain:` in config.yaml.
struct Settings {
  int idle_minutes = 0;
  std::map<std::string, int> pod_idle_minutes;
  std::string idle_action = "auto";
  int grace_minutes = 15;
  int comfy_down_minutes = 10;
  std::string restart_command;
  double daily_budget = 0;
  std::string budget_action = "auto";
};
Settings settings_from(const core::MaintainConfig& config);
// The idle limit of the pod named `name` (0: never idle).
int idle_limit(const Settings& settings, const std::string& name);

enum class Teardown { none, down, stop, notify };
std::string to_string(Teardown t);

// What an action amounts to for this pod: auto is down with a volume, else stop. A pod without
// a volume is never terminated (its disk would be lost): down becomes stop. What the provider
// cannot do becomes notify.
Teardown resolve_action(const std::string& action,
                        const providers::Pod& pod,
                        const providers::Capabilities& caps);

// Adds the running time since the last look to `memory` (reset at local midnight) and returns
// today's spend in USD. Running time starts at the latest of local midnight, the pod's creation
// and the last time maintain looked.
double account_spend(PodMemory& memory, const providers::Pod& pod, WallTime now);

// A command changed (or saw) `pod`'s state at `now`: adds its running time up to now when it
// `ran_until_now`, then remembers `after` as its status, so the next look counts running time
// from here (a stopped pod's time is not counted; a started pod's is, from its start).
void account_change(PodMemory& memory,
                    const providers::Pod& pod,
                    bool ran_until_now,
                    providers::PodStatus after,
                    WallTime now);

// Updates the last activity from ComfyUI (queue, history growth) and autopod's own record;
// returns the idle minutes, or nullopt when ComfyUI could not be read.
std::optional<double> account_idle(PodMemory& memory,
                                   const ComfyView& comfy,
                                   std::optional<Epoch> autopod_activity,
                                   WallTime now);

// True when the pod is idle past its limit and old enough; `why` says why (or why not).
bool idle_due(const Settings& settings,
              const providers::Pod& pod,
              const PodMemory& memory,
              std::optional<double> idle_minutes,
              WallTime now,
              std::string& why);

// Tracks ComfyUI being down; true when the restart command is due now (down past the grace,
// and not already restarted within it).
bool restart_due(const Settings& settings,
                 PodMemory& memory,
                 const ComfyView& comfy,
                 WallTime now,
                 std::string& why);

}  // namespace autopod::agent::maintain
