// autopod maintain: one upkeep pass for cron and systemd timers (see agent/maintain/).

#include <cstdio>
#include <iostream>

#include "agent/cli/commands.hpp"
#include "agent/maintain/maintain.hpp"
#include "agent/maintain/memory.hpp"

namespace autopod::agent {
namespace {

std::string minutes(const std::optional<double>& m) {
  if (!m)
    return "-";
  auto total = static_cast<long>(*m);
  if (total < 60)
    return std::to_string(total) + "m";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ldh%02ldm", total / 60, total % 60);
  return buf;
}

std::string queue_text(const maintain::PodReport& p) {
  if (!p.queue_running)
    return "-";
  return std::to_string(*p.queue_running) + "+" + std::to_string(p.queue_pending.value_or(0));
}

std::string did_text(const maintain::PodReport& p) {
  std::string out;
  for (const auto& d : p.did)
    out += (out.empty() ? "" : "; ") + d;
  if (out.empty())
    out = p.decision == "no-decision" ? "no decision" : "nothing";
  if (!p.reason.empty())
    out += " (" + p.reason + ")";
  if (!p.error.empty())
    out += ": " + p.error;
  return out;
}

void print_report(const maintain::Report& report) {
  std::vector<std::vector<std::string>> rows = {
      {"POD", "STATUS", "UPTIME", "COMFYUI", "QUEUE", "IDLE", "TODAY", "ACTION"}};
  for (const auto& p : report.pods)
    rows.push_back({p.name.empty() ? p.id : p.name, p.status, minutes(p.uptime_minutes), p.comfyui,
                    queue_text(p), minutes(p.idle_minutes), format_price(p.spend_today),
                    did_text(p)});
  if (!report.error.empty())
    std::cerr << "error: no decision for any pod: " << report.error
              << "\nhint: nothing was changed; "
              << "the next run tries again\n";
  if (report.pods.empty())
    std::cerr << "no pods\n";
  else
    print_table(rows);
  for (const auto& t : report.tunnels)
    std::cerr << "tunnels: " << t << "\n";
  std::cerr << "spend today " << format_price(report.spend_today)
            << (report.daily_budget > 0 ? " of " + format_price(report.daily_budget) + " budget"
                                        : "")
            << (report.over_budget ? ": over budget" : "")
            << (report.dry_run ? " (dry run: nothing changed)" : "") << "\n";
}

core::Status cmd_maintain(Context& ctx, const maintain::Options& options, int& exit_code) {
  TRY_ASSIGN(auto cfg, ctx.config());
  // Non-blocking: a pass still running (a slow API, a long restart) makes this one skip.
  TRY_ASSIGN(auto lock, maintain::RunLock::try_acquire(cfg->home));
  if (!lock) {
    if (ctx.json())
      print_json({{"skipped", true}, {"reason", "another autopod maintain is running"}});
    std::cerr << "another autopod maintain is running (lock " << cfg->home.maintain_lock().string()
              << "); skipping this run\n";
    return {};
  }
  TRY_ASSIGN(auto report, maintain::run(ctx, options));
  if (ctx.json())
    print_json(maintain::to_json(report));
  else
    print_report(report);
  if (report.over_budget)
    exit_code = k_exit_over_budget;
  else if (report.unclear)
    exit_code = k_exit_unclear;
  else if (report.action_failed)
    exit_code = k_exit_failure;
  return {};
}

}  // namespace

void add_maintain_command(CLI::App& app, Context& ctx, int& exit_code) {
  static maintain::Options options;
  static int timeout_secs = 60;
  auto* cmd = app.add_subcommand(
      "maintain", "one upkeep pass for cron/systemd: tunnels, comfyui health, idle, daily budget");
  cmd->add_flag("--dry-run", options.dry_run, "decide and print, change nothing");
  cmd->add_option("--timeout", timeout_secs, "seconds for the provider's answers (default 60)");
  cmd->callback([&ctx, &exit_code] {
    options.provider_timeout = std::chrono::seconds(timeout_secs);
    int code = k_exit_ok;
    run(ctx, exit_code, [&ctx, &code] { return cmd_maintain(ctx, options, code); })();
    if (exit_code == k_exit_ok)
      exit_code = code;
  });
}

}  // namespace autopod::agent
