// autopod connect, down, ls, info, start, stop, kill, ssh, gpus, providers.

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "agent/cli/commands.hpp"
#include "agent/maintain/maintain.hpp"
#include "core/retry.hpp"
#include "core/ssh_key.hpp"
#include "providers/pod_ops.hpp"
#include "providers/pod_spec.hpp"

namespace autopod::agent {

std::vector<std::string> ssh_argv(const core::Config& cfg, const providers::Pod& pod) {
  std::vector<std::string> argv = {"ssh"};
  if (!pod.ssh->key.empty()) argv.insert(argv.end(), {"-i", pod.ssh->key.string()});
  argv.insert(argv.end(), {"-p", std::to_string(pod.ssh->port), "-o",
                           "UserKnownHostsFile=" + cfg.home.known_hosts().string(), "-o",
                           "StrictHostKeyChecking=accept-new"});
  if (!pod.ssh->key.empty()) argv.insert(argv.end(), {"-o", "IdentitiesOnly=yes"});
  argv.push_back(pod.ssh->user + "@" + pod.ssh->host);
  return argv;
}

namespace {

using core::ErrorCode;
using core::Result;
using providers::Pod;
using providers::PodSpec;
using providers::PodStatus;
using nlohmann::json;

struct ConnectFlags {
  providers::SpecFlags spec;
  int timeout_secs = 600;
  bool no_wait = false;
};

std::string shell_quote(const std::string& a) {
  bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`!*?[]{}()<>|&;#~") == std::string::npos;
  if (plain) return a;
  std::string q;
  for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return "'" + q + "'";
}

std::string shell_join(const std::vector<std::string>& args) {
  std::vector<std::string> quoted;
  for (const auto& a : args) quoted.push_back(shell_quote(a));
  return fmt::format("{}", fmt::join(quoted, " "));
}

void print_pod(const core::Config& cfg, const providers::Capabilities& caps, const Pod& pod) {
  std::vector<std::vector<std::string>> rows = {
      {"id", pod.id},
      {"name", pod.name},
      {"provider", pod.provider},
      {"status", to_string(pod.status)},
  };
  if (!pod.image.empty()) rows.push_back({"image", pod.image});
  if (!pod.gpu_type.empty())
    rows.push_back({"gpu", std::to_string(pod.gpu_count) + "x " + pod.gpu_type});
  if (!pod.cloud.empty()) rows.push_back({"cloud", pod.cloud});
  if (!pod.data_center.empty()) rows.push_back({"data center", pod.data_center});
  if (caps.billing) rows.push_back({"cost", format_price(pod.cost_per_hr) + "/hr"});
  if (!pod.volume_id.empty()) rows.push_back({"volume", pod.volume_id + " at " + pod.mount_path});
  if (!pod.ports.empty()) rows.push_back({"ports", fmt::format("{}", fmt::join(pod.ports, ", "))});
  rows.push_back({"ssh", pod.ssh ? shell_join(ssh_argv(cfg, pod)) : "(not mapped yet)"});
  if (!pod.created_at.empty()) rows.push_back({"created", pod.created_at});
  for (auto& r : rows) r[0] += ":";
  print_table(rows);
}

std::string gpu_cell(const Pod& p) {
  if (p.gpu_type.empty()) return "-";
  return std::to_string(p.gpu_count) + "x " + p.gpu_type;
}

core::Status cmd_ls(Context& ctx) {
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto pods, provider->list_pods());
  TRY_ASSIGN(auto records, ctx.records());
  std::vector<providers::PodRecord> down;
  TRY_ASSIGN(auto all, records->all());
  for (const auto& r : all)
    if (r.status == "down" && r.provider == provider->name()) down.push_back(r);
  if (ctx.json()) {
    json out = {{"pods", pods}, {"down", json::array()}};
    for (const auto& r : down)
      out["down"].push_back({{"name", r.name}, {"volume_id", r.spec.volume_id},
                             {"updated_at", r.updated_at}});
    print_json(out);
    return {};
  }
  if (pods.empty() && down.empty()) {
    std::cerr << "no pods on " << provider->name() << " (create one: autopod connect)\n";
    return {};
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "ID", "STATUS", "GPU", "DC", "$/HR", "SSH"}};
  for (const auto& p : pods)
    rows.push_back({p.name, p.id, to_string(p.status), gpu_cell(p),
                    p.data_center.empty() ? "-" : p.data_center,
                    provider->capabilities().billing ? format_price(p.cost_per_hr) : "-",
                    providers::describe_endpoint(p)});
  for (const auto& r : down)
    rows.push_back({r.name, "-", "down", "-",
                    r.spec.data_centers.empty() ? "-" : r.spec.data_centers[0], "-",
                    "(autopod connect --name " + r.name + ")"});
  print_table(rows);
  return {};
}

// pods.json keeps what `down` + `connect --name` need, for providers that want it.
core::Status remember(Context& ctx, const Pod& pod, const std::optional<PodSpec>& created,
                      const std::string& status) {
  TRY_ASSIGN(auto provider, ctx.provider());
  if (!provider->capabilities().records) return {};
  TRY_ASSIGN(auto records, ctx.records());
  return providers::remember(*records, pod, created, status);
}

// The spend guard's record of running time: a pod that ran until now, and what it is now.
// A failure only warns: the command itself has done its work.
void record_change(Context& ctx, const Pod& pod, bool ran_until_now, PodStatus after) {
  auto cfg = ctx.config();
  if (!cfg) return;
  auto recorded = maintain::record_pod_change((*cfg)->home, pod, ran_until_now, after, maintain::now());
  if (!recorded) std::cerr << "warning: " << recorded.error().message << "\n";
}

core::Status cmd_connect(Context& ctx, const ConnectFlags& flags) {
  // --timeout bounds the whole command: the create and its retries, then the wait.
  auto& clock = core::system_clock();
  auto deadline = clock.now() + std::chrono::seconds(flags.timeout_secs);
  TRY_ASSIGN(auto cfg, ctx.config());
  TRY_ASSIGN(auto provider, ctx.provider());
  provider->set_deadline(deadline);
  TRY_ASSIGN(auto records, ctx.records());
  std::string name = flags.spec.name.empty() ? cfg->pod.name : flags.spec.name;
  TRY_ASSIGN(auto record, records->find(provider->name(), name));
  TRY_ASSIGN(auto spec, providers::resolve_spec(cfg->pod, flags.spec, record));
  if (provider->capabilities().managed_key) {
    TRY_ASSIGN(auto key, core::ensure_ssh_key(cfg->ssh_key, cfg->ssh_key_is_default));
    spec.public_key = key.public_key;
  }
  auto progress = [&](const std::string& line) { ctx.progress(line); };
  auto connected = providers::connect_pod(*provider, spec, progress);
  ctx.finish_progress();
  if (!connected) return core::fail(connected.error());
  Pod pod = connected->pod;
  std::optional<PodSpec> created;
  if (connected->outcome == providers::ConnectOutcome::created) created = connected->spec;
  TRY(remember(ctx, pod, created, to_string(pod.status)));
  record_change(ctx, pod, connected->outcome == providers::ConnectOutcome::reused, PodStatus::running);
  if (!flags.no_wait) {
    providers::WaitOptions wait;
    wait.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.now());
    if (const char* poll = std::getenv("AUTOPOD_POLL_MS")) wait.poll_interval = std::chrono::milliseconds(std::atoi(poll));
    auto ready = providers::wait_until_ready(*provider, pod.id, wait, clock, progress);
    ctx.finish_progress();
    if (!ready) return core::fail(ready.error());
    pod = *ready;
    TRY(remember(ctx, pod, created, to_string(pod.status)));
  }
  if (ctx.json()) {
    print_json(pod);
  } else {
    print_pod(*cfg, provider->capabilities(), pod);
  }
  return {};
}

core::Status cmd_info(Context& ctx, const std::string& id) {
  TRY_ASSIGN(auto cfg, ctx.config());
  TRY_ASSIGN(auto provider, ctx.provider());
  // find_pod lists the pods fresh from the provider (never cached): the ssh port is current.
  TRY_ASSIGN(auto pod, providers::find_pod(*provider, id));
  if (ctx.json()) {
    print_json(pod);
  } else {
    print_pod(*cfg, provider->capabilities(), pod);
  }
  return {};
}

core::Status cmd_start_stop(Context& ctx, const std::string& id, bool start) {
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto pod, providers::find_pod(*provider, id));
  if (start && pod.status == PodStatus::running) {
    std::cerr << "pod " << pod.name << " is already running\n";
  } else if (!start && pod.status == PodStatus::exited) {
    std::cerr << "pod " << pod.name << " is already stopped\n";
  } else {
    bool ran = maintain::billed(pod.status);
    TRY_ASSIGN(pod, start ? provider->start_pod(pod.id) : provider->stop_pod(pod.id));
    record_change(ctx, pod, ran, start ? PodStatus::running : PodStatus::exited);
    TRY(remember(ctx, pod, std::nullopt, to_string(pod.status)));
    std::cerr << "pod " << pod.name << " (" << pod.id << ") " << (start ? "starting" : "stopped")
              << (start ? "; autopod connect --name " + pod.name + " waits until it is ready" : "")
              << "\n";
  }
  if (ctx.json()) print_json(pod);
  return {};
}

core::Status cmd_kill(Context& ctx, const std::string& id, bool yes, bool keep_record) {
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto pod, providers::find_pod(*provider, id));
  if (keep_record && pod.volume_id.empty())
    TRY(confirm("terminate pod " + pod.name + " (" + pod.id +
                    "), which has no network volume: its data is lost", yes));
  if (!keep_record)
    TRY(confirm("terminate pod " + pod.name + " (" + pod.id + ")" +
                    (pod.volume_id.empty() ? "" : "; volume " + pod.volume_id + " is kept"), yes));
  TRY(provider->terminate_pod(pod.id));
  record_change(ctx, pod, maintain::billed(pod.status), PodStatus::terminated);
  // Its tunnels point at an address that is gone now.
  if (auto tunnels = ctx.tunnels()) {
    if (auto stopped = (*tunnels)->stop(pod.id))
      for (const auto& t : *stopped) std::cerr << "stopped tunnel " << t.id << "\n";
  }
  TRY_ASSIGN(auto records, ctx.records());
  if (keep_record) {
    TRY(remember(ctx, pod, std::nullopt, "down"));
    std::cerr << "pod " << pod.name << " terminated"
              << (pod.volume_id.empty() ? "" : "; volume " + pod.volume_id + " kept") << "\n"
              << "bring it back with: autopod connect --name " << pod.name << "\n";
  } else {
    TRY(records->remove(pod.provider, pod.name));
    std::cerr << "pod " << pod.name << " (" << pod.id << ") terminated\n";
  }
  if (ctx.json()) print_json({{"id", pod.id}, {"name", pod.name}, {"status", keep_record ? "down" : "terminated"}});
  return {};
}

core::Status cmd_ssh(Context& ctx, const std::string& id, bool print_only,
                     const std::vector<std::string>& command) {
  TRY_ASSIGN(auto cfg, ctx.config());
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto pod, providers::find_pod(*provider, id));  // fresh, as in cmd_info
  if (!pod.ssh)
    return core::fail(ErrorCode::not_found, "pod " + pod.name + " has no direct ssh endpoint yet",
                      "it needs 22/tcp exposed and to be running: autopod connect --name " + pod.name);
  auto argv = ssh_argv(*cfg, pod);
  argv.insert(argv.end(), command.begin(), command.end());
  if (print_only) {
    std::cout << shell_join(argv) << "\n";
    return {};
  }
  TRY(ctx.ensure_key(pod));
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::cout.flush();
  ::execvp("ssh", args.data());
  return core::fail(ErrorCode::not_found, std::string("cannot run ssh: ") + std::strerror(errno),
                    "apt-get install openssh-client");
}

core::Status cmd_gpus(Context& ctx) {
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto gpus, provider->list_gpu_types());
  if (ctx.json()) {
    print_json({{"gpus", gpus}});
    return {};
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "VRAM", "SECURE", "COMMUNITY", "STOCK"}};
  for (const auto& g : gpus)
    rows.push_back({g.id, g.name, std::to_string(g.memory_gb) + " GB",
                    format_price(g.price_secure) + "/hr", format_price(g.price_community) + "/hr",
                    g.availability.empty() ? "-" : g.availability});
  print_table(rows);
  return {};
}

core::Status cmd_providers(Context& ctx) {
  TRY_ASSIGN(auto cfg, ctx.config());
  providers::register_builtin_providers();
  std::vector<std::string> dirs;
  for (const auto& d : cfg->plugin_dirs) dirs.push_back(d.string());
  std::vector<core::Error> problems;
  providers::load_plugins(dirs, problems);
  auto names = providers::provider_names();
  if (ctx.json()) {
    json bad = json::array();
    for (const auto& p : problems) bad.push_back({{"message", p.message}, {"hint", p.hint}});
    print_json({{"providers", names}, {"current", cfg->provider}, {"plugin_errors", bad}});
    return {};
  }
  for (const auto& n : names) std::cout << (n == cfg->provider ? "* " : "  ") << n << "\n";
  for (const auto& p : problems) std::cerr << "warning: " << p.message << "\nhint: " << p.hint << "\n";
  return {};
}

}  // namespace

void add_pod_commands(CLI::App& app, Context& ctx, int& exit_code) {
  static ConnectFlags cf;
  auto* connect = app.add_subcommand("connect", "create a pod (or reuse/restart the named one) and wait until ssh answers");
  connect->add_option("--name", cf.spec.name, "pod name (reused when it exists; default: pod.name)");
  connect->add_option("--image", cf.spec.image, "container image");
  connect->add_option("--gpu", cf.spec.gpus, "gpu type, repeatable, tried in order (see autopod gpus)");
  connect->add_option("--gpu-count", cf.spec.gpu_count, "gpus per pod")->check(CLI::PositiveNumber);
  connect->add_option("--cloud", cf.spec.cloud, "secure or community")->check(CLI::IsMember({"secure", "community"}));
  connect->add_option("--disk", cf.spec.disk_gb, "container disk in GB")->check(CLI::PositiveNumber);
  connect->add_option("--volume", cf.spec.volume, "network volume id or name to mount");
  connect->add_option("--mount", cf.spec.mount, "where the volume is mounted (default /workspace)");
  connect->add_option("--port", cf.spec.ports, "port to expose, e.g. 8188/http (repeatable)");
  connect->add_option("--env", cf.spec.env, "NAME=VALUE for the pod (repeatable)");
  connect->add_option("--dc", cf.spec.dcs, "data center, repeatable, tried in order");
  connect->add_option("--timeout", cf.timeout_secs, "seconds the whole command may take: create (with its retries) and wait")->check(CLI::PositiveNumber);
  connect->add_flag("--no-wait", cf.no_wait, "return once the pod is created");
  connect->callback(run(ctx, exit_code, [&ctx] { return cmd_connect(ctx, cf); }));

  static std::string pod_id;
  static bool yes = false, print_only = false;
  static std::vector<std::string> remote_command;
  auto* ls = app.add_subcommand("ls", "list pods");
  ls->callback(run(ctx, exit_code, [&ctx] { return cmd_ls(ctx); }));
  auto* info = app.add_subcommand("info", "show a pod, with its direct ssh endpoint");
  info->add_option("POD", pod_id, "pod id or name (optional when there is one pod)");
  info->callback(run(ctx, exit_code, [&ctx] { return cmd_info(ctx, pod_id); }));
  auto* start = app.add_subcommand("start", "start a stopped pod");
  start->add_option("POD", pod_id, "pod id or name");
  start->callback(run(ctx, exit_code, [&ctx] { return cmd_start_stop(ctx, pod_id, true); }));
  auto* stop = app.add_subcommand("stop", "stop a pod (its host keeps it; see also: down)");
  stop->add_option("POD", pod_id, "pod id or name");
  stop->callback(run(ctx, exit_code, [&ctx] { return cmd_start_stop(ctx, pod_id, false); }));
  auto* down = app.add_subcommand("down", "terminate a pod but keep its volume; connect --name brings it back");
  down->add_option("POD", pod_id, "pod id or name");
  down->add_flag("--yes,-y", yes, "do not ask (needed for a pod without a volume)");
  down->callback(run(ctx, exit_code, [&ctx] { return cmd_kill(ctx, pod_id, yes, true); }));
  auto* kill = app.add_subcommand("kill", "terminate a pod (asks unless --yes)");
  kill->add_option("POD", pod_id, "pod id or name");
  kill->add_flag("--yes,-y", yes, "do not ask");
  kill->callback(run(ctx, exit_code, [&ctx] { return cmd_kill(ctx, pod_id, yes, false); }));
  auto* ssh = app.add_subcommand("ssh", "open ssh to the pod (or run COMMAND there)");
  ssh->add_option("POD", pod_id, "pod id or name");
  ssh->add_flag("--print", print_only, "print the ssh command instead of running it");
  ssh->add_option("COMMAND", remote_command, "command to run on the pod (after --)");
  ssh->callback(run(ctx, exit_code, [&ctx] { return cmd_ssh(ctx, pod_id, print_only, remote_command); }));
  auto* gpus = app.add_subcommand("gpus", "gpu types with memory and prices");
  gpus->callback(run(ctx, exit_code, [&ctx] { return cmd_gpus(ctx); }));
  auto* provs = app.add_subcommand("providers", "built-in and plugin providers");
  provs->callback(run(ctx, exit_code, [&ctx] { return cmd_providers(ctx); }));
}

}  // namespace autopod::agent
