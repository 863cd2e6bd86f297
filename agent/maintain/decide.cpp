// maintain's decisions as pure functions of its memory, what it saw and the time.

#include "agent/maintain/decide.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace autopod::agent::maintain {

Epoch to_epoch(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Epoch local_midnight(WallTime t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::localtime_r(&secs, &tm);
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  tm.tm_isdst = -1;  // let mktime find whether midnight was in summer time
  return static_cast<Epoch>(std::mktime(&tm));
}

std::string local_day(WallTime t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::localtime_r(&secs, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::optional<Epoch> parse_utc(const std::string& text) {
  std::tm tm{};
  char sep = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%c%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &sep, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 7 ||
      (sep != 'T' && sep != ' '))
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<Epoch>(::timegm(&tm));
}

std::string to_string(Health health) {
  switch (health) {
    case Health::up:
      return "up";
    case Health::down:
      return "down";
    case Health::starting:
      return "starting";
    case Health::not_running:
      return "not running";
    case Health::no_tunnel:
      return "no tunnel";
    case Health::unknown:
      return "unknown";
  }
  return "unknown";
}

std::string to_string(Teardown t) {
  switch (t) {
    case Teardown::none:
      return "none";
    case Teardown::down:
      return "down";
    case Teardown::stop:
      return "stop";
    case Teardown::notify:
      return "notify";
  }
  return "none";
}

Settings settings_from(const core::MaintainConfig& c) {
  Settings s;
  s.idle_minutes = c.idle_minutes;
  for (const auto& [name, minutes] : c.pod_idle_minutes)
    s.pod_idle_minutes[name] = std::atoi(minutes.c_str());
  s.idle_action = c.idle_action;
  s.grace_minutes = c.grace_minutes;
  s.comfy_down_minutes = c.comfy_down_minutes;
  s.restart_command = c.restart_command;
  s.daily_budget = c.daily_budget;
  s.budget_action = c.budget_action;
  return s;
}

int idle_limit(const Settings& settings, const std::string& name) {
  auto it = settings.pod_idle_minutes.find(name);
  return it != settings.pod_idle_minutes.end() ? it->second : settings.idle_minutes;
}

Teardown resolve_action(const std::string& action,
                        const providers::Pod& pod,
                        const providers::Capabilities& caps) {
  if (action == "notify")
    return Teardown::notify;
  bool down = action == "down" || (action == "auto" && !pod.volume_id.empty());
  if (down && !pod.volume_id.empty() && caps.terminate)
    return Teardown::down;
  return caps.stop_start ? Teardown::stop : Teardown::notify;
}

bool billed(providers::PodStatus status) {
  return status == providers::PodStatus::running || status == providers::PodStatus::starting ||
         status == providers::PodStatus::provisioning;
}

double account_spend(PodMemory& memory, const providers::Pod& pod, WallTime now) {
  std::string today = local_day(now);
  if (memory.day != today) {
    memory.day = today;
    memory.running_secs = 0;
  }
  Epoch t = to_epoch(now);
  if (billed(pod.status)) {
    Epoch from = std::max(local_midnight(now), memory.last_seen);
    if (auto created = parse_utc(pod.created_at))
      from = std::max(from, *created);
    if (t > from)
      memory.running_secs += static_cast<double>(t - from);
  }
  memory.cost_per_hr = pod.cost_per_hr;
  memory.last_seen = t;
  memory.last_status = to_string(pod.status);
  return memory.running_secs / 3600.0 * memory.cost_per_hr;
}

void account_change(PodMemory& memory,
                    const providers::Pod& pod,
                    bool ran_until_now,
                    providers::PodStatus after,
                    WallTime now) {
  providers::Pod before = pod;
  before.status = ran_until_now ? providers::PodStatus::running : providers::PodStatus::exited;
  if (memory.first_seen == 0)
    memory.first_seen = to_epoch(now);
  memory.name = pod.name;
  (void)account_spend(memory, before, now);
  memory.last_status = to_string(after);
}

std::optional<double> account_idle(PodMemory& memory,
                                   const ComfyView& comfy,
                                   std::optional<Epoch> autopod_activity,
                                   WallTime now) {
  Epoch t = to_epoch(now);
  if (autopod_activity)
    memory.last_activity = std::max(memory.last_activity, *autopod_activity);
  if (comfy.health != Health::up)
    return std::nullopt;
  bool busy = comfy.running + comfy.pending > 0;
  bool grew = comfy.history_sig != memory.history_sig;
  // First look: nothing to compare with, so the pod counts as active now.
  if (busy || grew || memory.last_activity == 0)
    memory.last_activity = t;
  memory.history_sig = comfy.history_sig;
  return static_cast<double>(std::max<Epoch>(0, t - memory.last_activity)) / 60.0;
}

bool idle_due(const Settings& settings,
              const providers::Pod& pod,
              const PodMemory& memory,
              std::optional<double> idle_minutes,
              WallTime now,
              std::string& why) {
  int limit = idle_limit(settings, pod.name);
  if (limit <= 0 || !idle_minutes)
    return false;
  Epoch born = memory.first_seen;
  if (auto created = parse_utc(pod.created_at))
    born = *created;
  double age = static_cast<double>(to_epoch(now) - born) / 60.0;
  if (age < settings.grace_minutes) {
    if (*idle_minutes >= limit)
      why = fmt::format("created {:.0f} min ago (grace {} min): never idle yet", age,
                        settings.grace_minutes);
    return false;
  }
  if (*idle_minutes < limit)
    return false;
  why = fmt::format("idle {:.0f} min (limit {} min)", *idle_minutes, limit);
  return true;
}

bool restart_due(const Settings& settings,
                 PodMemory& memory,
                 const ComfyView& comfy,
                 WallTime now,
                 std::string& why) {
  Epoch t = to_epoch(now);
  if (comfy.health != Health::down) {
    // Starting, stopped or up: not down. Unknown (the tunnel itself is not there): no change.
    if (comfy.health != Health::unknown && comfy.health != Health::no_tunnel)
      memory.comfy_down_since = 0;
    return false;
  }
  if (memory.comfy_down_since == 0)
    memory.comfy_down_since = t;
  double down_min = static_cast<double>(t - memory.comfy_down_since) / 60.0;
  if (down_min < settings.comfy_down_minutes) {
    why = fmt::format("comfyui down {:.0f} min (grace {} min)", down_min,
                      settings.comfy_down_minutes);
    return false;
  }
  if (settings.restart_command.empty()) {
    why = fmt::format("comfyui down {:.0f} min; no maintain.restart_command configured", down_min);
    return false;
  }
  why =
      fmt::format("comfyui down {:.0f} min (grace {} min)", down_min, settings.comfy_down_minutes);
  return true;
}

}  // namespace autopod::agent::maintain
