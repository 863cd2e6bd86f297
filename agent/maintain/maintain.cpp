// One maintain pass: look at every pod, decide, act (unless --dry-run), remember, log.

#include "agent/maintain/maintain.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "agent/maintain/decide.hpp"
#include "agent/maintain/memory.hpp"
#include "agent/maintain/steps.hpp"

namespace autopod::agent::maintain {
namespace {

using providers::Pod;
using providers::PodStatus;

// A pod seen this pass, with what was decided about it.
struct Seen {
  Pod pod;
  PodReport report;
  Teardown teardown = Teardown::none;
  bool restart = false;
};

std::string usd(double v) {
  return fmt::format("${:.2f}", v);
}

PodReport no_decision(const std::string& id, const std::string& name, const core::Error& why) {
  PodReport r;
  r.id = id;
  r.name = name;
  r.status = "unknown";
  r.comfyui = "unknown";
  r.decision = "no-decision";
  r.error = why.message;
  r.reason = "cannot see the pod clearly: nothing is done to it";
  return r;
}

// The provider could not be asked: every pod autopod knows gets no decision.
Report unclear_report(Context& ctx,
                      const std::map<std::string, PodMemory>& memory,
                      const core::Error& why) {
  Report report;
  report.unclear = true;
  report.error = why.message;
  std::set<std::string> ids;
  for (const auto& [id, m] : memory) {
    ids.insert(id);
    report.pods.push_back(no_decision(id, m.name, why));
  }
  if (auto records = ctx.records())
    if (auto all = (*records)->all())
      for (const auto& r : *all)
        if (!r.id.empty() && ids.insert(r.id).second)
          report.pods.push_back(no_decision(r.id, r.name, why));
  return report;
}

// What the pass saw of one listed pod; updates its memory and decides health and idle.
Seen look(Context& ctx,
          const Settings& settings,
          const Options& options,
          const Pod& pod,
          PodMemory& m,
          std::optional<Epoch> activity,
          WallTime t) {
  Seen s{pod, {}, Teardown::none, false};
  auto& r = s.report;
  r.id = pod.id;
  r.name = pod.name;
  r.status = to_string(pod.status);
  if (m.first_seen == 0)
    m.first_seen = to_epoch(t);
  m.name = pod.name;
  if (auto created = parse_utc(pod.created_at))
    r.uptime_minutes = static_cast<double>(to_epoch(t) - *created) / 60.0;
  r.spend_today = account_spend(m, pod, t);
  if (pod.status == PodStatus::unknown) {
    r.decision = "no-decision";
    r.reason = "the provider reports an unknown status";
    return s;
  }
  bool needs_comfy = idle_limit(settings, pod.name) > 0 || !settings.restart_command.empty();
  auto comfy = look_at_comfyui(ctx, pod, needs_comfy && !options.dry_run);
  r.comfyui = to_string(comfy.health);
  if (comfy.health == Health::up) {
    r.queue_running = comfy.running;
    r.queue_pending = comfy.pending;
  } else if (!comfy.detail.empty()) {
    r.reason = comfy.detail;
  }
  std::string why;
  s.restart = restart_due(settings, m, comfy, t, why);
  if (!why.empty())
    r.reason = why;
  r.idle_minutes = account_idle(m, comfy, activity, t);
  why.clear();
  if (idle_due(settings, pod, m, r.idle_minutes, t, why)) {
    s.teardown = resolve_action(settings.idle_action, pod, ctx.provider().value()->capabilities());
    r.reason = why;
  } else if (!why.empty()) {
    r.reason = why;
  }
  return s;
}

double total_today(const std::map<std::string, PodMemory>& memory, WallTime t) {
  double total = 0;
  std::string today = local_day(t);
  for (const auto& [id, m] : memory)
    if (m.day == today)
      total += m.running_secs / 3600.0 * m.cost_per_hr;
  return total;
}

void apply_budget(Context& ctx, const Settings& settings, std::vector<Seen>& seen, Report& report) {
  if (settings.daily_budget <= 0 || report.spend_today <= settings.daily_budget)
    return;
  report.over_budget = true;
  auto caps = ctx.provider().value()->capabilities();
  for (auto& s : seen) {
    bool billed = s.pod.cost_per_hr > 0 &&
                  (s.pod.status == PodStatus::running || s.pod.status == PodStatus::starting ||
                   s.pod.status == PodStatus::provisioning);
    if (!billed || s.report.decision == "no-decision")
      continue;
    s.teardown = resolve_action(settings.budget_action, s.pod, caps);
    s.restart = false;
    s.report.reason = "over the daily budget: " + usd(report.spend_today) + " today > " +
                      usd(settings.daily_budget);
  }
}

// Carries out what was decided for one pod, logging each action.
void act(Context& ctx,
         const Settings& settings,
         const Options& options,
         Seen& s,
         PodMemory& m,
         Report& report,
         WallTime t) {
  auto& r = s.report;
  const core::Home& home = ctx.config().value()->home;
  std::string prefix = options.dry_run ? "would " : "";
  auto log = [&](const std::string& what) {
    if (!options.dry_run)
      (void)append_log(home, t,
                       "pod " + s.pod.name + " (" + s.pod.id + "): " + what + ": " + r.reason);
  };
  if (s.teardown != Teardown::none) {
    r.decision = to_string(s.teardown);
    std::string what = s.teardown == Teardown::down   ? "take down (terminate, keep volume)"
                       : s.teardown == Teardown::stop ? "stop"
                                                      : "notify";
    r.did.push_back(s.teardown == Teardown::notify ? "notice only" : prefix + what);
    log(what);
    if (!options.dry_run && s.teardown != Teardown::notify)
      if (auto done = tear_down(ctx, s.pod, s.teardown); !done) {
        r.error = done.error().message;
        report.action_failed = true;
        log("failed: " + r.error);
      }
    return;
  }
  if (s.restart) {
    r.decision = "restart-comfyui";
    r.did.push_back(prefix + "run `" + settings.restart_command + "` over ssh");
    if (options.dry_run)
      return;
    log("restart comfyui with `" + settings.restart_command + "`");
    m.restarted_at = to_epoch(t);
    m.comfy_down_since = to_epoch(t);  // a new grace period for it to come back
    if (auto done = run_on_pod(ctx, s.pod, settings.restart_command); !done) {
      r.error = done.error().message;
      report.action_failed = true;
      log("restart failed: " + r.error);
    }
  }
}

// Pods pods.json remembers as up that the provider no longer lists: reported, nothing to do
// (their tunnels were stopped above).
void add_gone(Context& ctx, const std::vector<Pod>& listed, Report& report) {
  auto records = ctx.records();
  if (!records)
    return;
  auto all = (*records)->all();
  if (!all)
    return;
  for (const auto& r : *all) {
    bool listed_now =
        std::any_of(listed.begin(), listed.end(), [&](const Pod& p) { return p.id == r.id; });
    if (r.id.empty() || r.status == "down" || listed_now ||
        r.provider != ctx.provider().value()->name())
      continue;
    PodReport gone;
    gone.id = r.id;
    gone.name = r.name;
    gone.status = "gone";
    gone.comfyui = "unknown";
    gone.reason = "in pods.json, but " + r.provider + " no longer lists it";
    report.pods.push_back(std::move(gone));
  }
}

}  // namespace

WallTime now() {
  auto t = std::chrono::system_clock::now();
  if (const char* offset = std::getenv("AUTOPOD_TEST_NOW_OFFSET_S"); offset && *offset)
    t += std::chrono::seconds(std::atoll(offset));
  return t;
}

core::Result<Report> run(Context& ctx, const Options& options) {
  TRY_ASSIGN(auto cfg, ctx.config());
  auto settings = settings_from(cfg->maintain);
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(const auto loaded, load_memory(cfg->home));
  auto memory = loaded;
  TRY_ASSIGN(auto activity, load_activity(cfg->home));
  WallTime t = now();
  provider->set_deadline(core::system_clock().now() + options.provider_timeout);
  auto listed = provider->list_pods();
  if (!listed) {
    auto report = unclear_report(ctx, memory, listed.error());
    report.dry_run = options.dry_run;
    report.daily_budget = settings.daily_budget;
    if (!options.dry_run)
      (void)append_log(cfg->home, t,
                       "no decision: " + provider->name() + ": " + listed.error().message);
    return report;
  }
  Report report;
  report.dry_run = options.dry_run;
  report.daily_budget = settings.daily_budget;
  report.tunnels = tend_tunnels(ctx, *listed, options.dry_run, report.action_failed);
  std::vector<Seen> seen;
  for (const auto& pod : *listed) {
    auto a = activity.find(pod.id);
    seen.push_back(look(ctx, settings, options, pod, memory[pod.id],
                        a == activity.end() ? std::nullopt : std::optional<Epoch>(a->second), t));
    if (seen.back().report.decision == "no-decision")
      report.unclear = true;
  }
  report.spend_today = total_today(memory, t);
  apply_budget(ctx, settings, seen, report);
  for (auto& s : seen) {
    act(ctx, settings, options, s, memory[s.pod.id], report, t);
    report.pods.push_back(std::move(s.report));
  }
  add_gone(ctx, *listed, report);
  for (const auto& line : report.tunnels)
    if (!options.dry_run)
      (void)append_log(cfg->home, t, "tunnels: " + line);
  // Forget pods that are gone, except what they cost today (it counts toward the budget).
  std::string today = local_day(t);
  std::erase_if(memory, [&](const auto& kv) {
    bool listed_now =
        std::any_of(listed->begin(), listed->end(), [&](const Pod& p) { return p.id == kv.first; });
    return !listed_now && kv.second.day != today;
  });
  if (!options.dry_run)
    TRY(save_memory(cfg->home, loaded, memory));
  return report;
}

nlohmann::json to_json(const Report& report) {
  using nlohmann::json;
  json pods = json::array();
  auto opt = [](const auto& o) { return o ? json(*o) : json(nullptr); };
  for (const auto& p : report.pods)
    pods.push_back({{"id", p.id},
                    {"name", p.name},
                    {"status", p.status},
                    {"uptime_minutes", opt(p.uptime_minutes)},
                    {"comfyui", p.comfyui},
                    {"queue_running", opt(p.queue_running)},
                    {"queue_pending", opt(p.queue_pending)},
                    {"idle_minutes", opt(p.idle_minutes)},
                    {"spend_today", p.spend_today},
                    {"decision", p.decision},
                    {"reason", p.reason},
                    {"did", p.did},
                    {"error", p.error}});
  return {{"pods", pods},
          {"tunnels", report.tunnels},
          {"spend_today", report.spend_today},
          {"daily_budget", report.daily_budget},
          {"over_budget", report.over_budget},
          {"unclear", report.unclear},
          {"action_failed", report.action_failed},
          {"dry_run", report.dry_run},
          {"error", report.error},
          {"skipped", false}};
}

}  // namespace autopod::agent::maintain
