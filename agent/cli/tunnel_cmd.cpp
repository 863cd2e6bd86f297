// autopod tunnel start|stop|list|cleanup|stop-all.

#include <iostream>

#include "agent/cli/commands.hpp"
#include "core/ssh_key.hpp"
#include "providers/pod_ops.hpp"

namespace autopod::agent {
namespace {

using core::ErrorCode;
using nlohmann::json;

struct StartFlags {
  std::string pod;
  std::vector<std::string> forwards;
  std::string bind = "127.0.0.1";
  int window_mb = 8;
  double open_timeout_s = 10;
};

std::string describe_forwards(const tunnel::TunnelSpec& s) {
  std::string out;
  for (const auto& f : s.forwards) {
    out += (out.empty() ? "" : ", ") + f.bind + ":" + std::to_string(f.local_port) + "->";
    if (f.remote_host != "127.0.0.1" && f.remote_host != "localhost") out += f.remote_host + ":";
    out += std::to_string(f.remote_port);
  }
  return out;
}

bool is_loopback(const std::string& addr) { return addr.rfind("127.", 0) == 0 || addr == "localhost"; }

}  // namespace

// Builds the tunnel spec for a running pod with a direct SSH endpoint.
core::Result<tunnel::TunnelSpec> tunnel_spec_for(Context& ctx, const providers::Pod& pod,
                                                 const std::vector<std::string>& forwards,
                                                 const std::string& bind) {
  if (pod.status != providers::PodStatus::running)
    return core::fail(ErrorCode::conflict, "pod " + pod.name + " is " + to_string(pod.status) + ", not running",
                      "start it first: autopod connect --name " + pod.name);
  if (!pod.ssh)
    return core::fail(ErrorCode::not_found, "pod " + pod.name + " has no direct ssh endpoint yet",
                      "it needs 22/tcp exposed; autopod connect waits until it has one");
  tunnel::TunnelSpec spec;
  spec.pod_id = pod.id;
  spec.pod_name = pod.name;
  spec.provider = pod.provider;
  spec.ssh = *pod.ssh;
  TRY(ctx.ensure_key(pod));
  spec.log_level = ctx.options().verbose ? "debug" : "info";
  spec.forwards.clear();
  for (const auto& text : forwards.empty() ? std::vector<std::string>{"8188:8188"} : forwards) {
    TRY_ASSIGN(auto f, tunnel::parse_forward(text, bind));
    spec.forwards.push_back(f);
  }
  for (const auto& f : spec.forwards)
    if (!is_loopback(f.bind))
      std::cerr << "warning: listening on " << f.bind << ":" << f.local_port
                << " lets other machines reach the pod's port " << f.remote_port
                << " (ComfyUI has no authentication)\n";
  return spec;
}

namespace {

core::Status cmd_start(Context& ctx, const StartFlags& flags) {
  TRY_ASSIGN(auto provider, ctx.provider());
  // Listed fresh from the provider: the SSH port changes on every start.
  TRY_ASSIGN(auto pod, providers::find_pod(*provider, flags.pod));
  TRY_ASSIGN(auto spec, tunnel_spec_for(ctx, pod, flags.forwards, flags.bind));
  if (flags.window_mb < 2 || flags.window_mb > 256)
    return core::fail(ErrorCode::invalid_argument, "--window-mb must be 2 to 256");
  spec.window_bytes = static_cast<std::uint32_t>(flags.window_mb) << 20;
  if (!(flags.open_timeout_s >= 0.1 && flags.open_timeout_s <= 3600))
    return core::fail(ErrorCode::invalid_argument, "--open-timeout must be 0.1 to 3600 seconds");
  spec.open_timeout = std::chrono::milliseconds(static_cast<long long>(flags.open_timeout_s * 1000));
  TRY_ASSIGN(auto tunnels, ctx.tunnels());
  bool reused = false;
  TRY_ASSIGN(auto t, tunnels->ensure(spec, &reused));
  if (ctx.json()) {
    auto j = tunnel::to_json(t);
    j["reused"] = reused;
    print_json(j);
    return {};
  }
  std::cerr << "tunnel " << t.id << " to " << spec.pod_name << " "
            << (reused ? "already running" : "started") << " (pid " << t.pid << ")\n";
  for (const auto& f : t.spec.forwards)
    std::cout << "http://" << f.bind << ":" << f.local_port << " -> pod port " << f.remote_port << "\n";
  return {};
}

core::Status cmd_list(Context& ctx) {
  TRY_ASSIGN(auto tunnels, ctx.tunnels());
  TRY_ASSIGN(auto list, tunnels->list());
  if (ctx.json()) {
    json out = json::array();
    for (const auto& t : list) out.push_back(tunnel::to_json(t));
    print_json({{"tunnels", out}});
    return {};
  }
  if (list.empty()) {
    std::cerr << "no tunnels (start one: autopod tunnel start POD)\n";
    return {};
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "POD", "FORWARDS", "STATUS", "PID", "TO POD", "FROM POD", "CONNS", "OPENING", "STARTED"}};
  for (const auto& t : list) {
    std::string status = t.status;
    if (!t.last_error.empty() && t.status != "active") status += " (" + t.last_error + ")";
    rows.push_back({t.id, t.spec.pod_name.empty() ? t.spec.ssh.host : t.spec.pod_name,
                    describe_forwards(t.spec), status, std::to_string(t.pid),
                    t.stats ? format_bytes(t.stats->bytes_to_pod) : "-",
                    t.stats ? format_bytes(t.stats->bytes_from_pod) : "-",
                    t.stats ? std::to_string(t.stats->connections_open) : "-",
                    t.stats ? std::to_string(t.stats->opens_pending) : "-", t.started_at});
  }
  print_table(rows);
  return {};
}

core::Status report_stopped(Context& ctx, const std::vector<tunnel::TunnelInfo>& stopped,
                            const char* verb) {
  if (ctx.json()) {
    json ids = json::array();
    for (const auto& t : stopped) ids.push_back(t.id);
    print_json({{verb, ids}});
    return {};
  }
  for (const auto& t : stopped) std::cerr << verb << " tunnel " << t.id << " (" << t.spec.pod_name << ")\n";
  if (stopped.empty()) std::cerr << "nothing to do\n";
  return {};
}

}  // namespace

void add_tunnel_commands(CLI::App& app, Context& ctx, int& exit_code) {
  auto* tunnel = app.add_subcommand("tunnel", "ssh tunnels to pods, run as background daemons");
  tunnel->require_subcommand(1);
  tunnel->fallthrough();

  static StartFlags sf;
  auto* start = tunnel->add_subcommand("start", "forward local ports to the pod (default 8188:8188)");
  start->add_option("POD", sf.pod, "pod id or name (optional when there is one pod)");
  start->add_option("-L,--forward", sf.forwards, "LOCAL:REMOTE, repeatable (ssh -L forms too)");
  start->add_option("--bind", sf.bind, "local address to listen on (default 127.0.0.1)");
  start->add_option("--window-mb", sf.window_mb, "ssh channel window for data from the pod (MiB)");
  start->add_option("--open-timeout", sf.open_timeout_s,
                    "seconds a new connection may wait for the pod to reach its target (default 10)");
  start->callback(run(ctx, exit_code, [&ctx] { return cmd_start(ctx, sf); }));

  static std::string id;
  auto* stop = tunnel->add_subcommand("stop", "stop the tunnels of a pod, or one tunnel by id");
  stop->add_option("POD_OR_ID", id, "pod id or name, or tunnel id")->required();
  stop->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto tunnels, ctx.tunnels());
    TRY_ASSIGN(auto stopped, tunnels->stop(id));
    return report_stopped(ctx, stopped, "stopped");
  }));
  auto* list = tunnel->add_subcommand("list", "tunnels with liveness, traffic and connections");
  list->callback(run(ctx, exit_code, [&ctx] { return cmd_list(ctx); }));
  auto* cleanup = tunnel->add_subcommand("cleanup", "forget tunnels whose daemon is gone");
  cleanup->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto tunnels, ctx.tunnels());
    TRY_ASSIGN(auto removed, tunnels->cleanup());
    return report_stopped(ctx, removed, "removed");
  }));
  auto* stop_all = tunnel->add_subcommand("stop-all", "stop every tunnel");
  stop_all->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto tunnels, ctx.tunnels());
    TRY_ASSIGN(auto stopped, tunnels->stop_all());
    return report_stopped(ctx, stopped, "stopped");
  }));
}

}  // namespace autopod::agent
