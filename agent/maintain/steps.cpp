// The parts of a maintain pass that touch tunnels, ComfyUI and pods.

#include "agent/maintain/steps.hpp"

#include <algorithm>

#include "agent/cli/commands.hpp"
#include "agent/pod_ssh.hpp"
#include "comfy/client.hpp"
#include "core/http.hpp"
#include "providers/pod_spec.hpp"

namespace autopod::agent::maintain {
namespace {

using core::ErrorCode;
using providers::Pod;
using providers::PodStatus;
using tunnel::TunnelInfo;

bool live(const TunnelInfo& t) {
  return t.status == "active" || t.status == "reconnecting" || t.status == "connecting";
}

std::string forward_text(const tunnel::Forward& f) {
  return f.bind + ":" + std::to_string(f.local_port) + ":" + f.remote_host + ":" +
         std::to_string(f.remote_port);
}

const Pod* find(const std::vector<Pod>& pods, const std::string& id) {
  auto it = std::find_if(pods.begin(), pods.end(), [&](const Pod& p) { return p.id == id; });
  return it == pods.end() ? nullptr : &*it;
}

ComfyView view_of(Health health, std::string detail) {
  ComfyView v;
  v.health = health;
  v.detail = std::move(detail);
  return v;
}

std::string name_of(const TunnelInfo& t) {
  return t.spec.pod_name.empty() ? t.spec.pod_id : t.spec.pod_name;
}

// Restarts a dead tunnel with the forwards it had, to the pod's current endpoint.
core::Result<std::string> restart_tunnel(Context& ctx, const Pod& pod, const TunnelInfo& dead) {
  std::vector<std::string> forwards;
  for (const auto& f : dead.spec.forwards)
    forwards.push_back(forward_text(f));
  TRY_ASSIGN(auto spec, tunnel_spec_for(ctx, pod, forwards, "127.0.0.1"));
  spec.window_bytes = dead.spec.window_bytes;
  TRY_ASSIGN(auto tunnels, ctx.tunnels());
  TRY_ASSIGN(auto info, tunnels->ensure(spec));
  return info.id;
}

}  // namespace

std::vector<std::string> tend_tunnels(Context& ctx,
                                      const std::vector<Pod>& pods,
                                      bool dry_run,
                                      bool& failed) {
  std::vector<std::string> lines;
  auto tunnels = ctx.tunnels();
  auto provider = ctx.provider();
  if (!tunnels || !provider)
    return lines;
  auto list = (*tunnels)->list();
  if (!list) {
    failed = true;
    return {"cannot list tunnels: " + list.error().message};
  }
  std::string verb = dry_run ? "would " : "";
  for (const auto& t : *list) {
    if (!t.spec.provider.empty() && t.spec.provider != (*provider)->name())
      continue;
    const Pod* pod = find(pods, t.spec.pod_id);
    std::string line;
    core::Status done;
    if (!pod) {
      line = verb + "stop tunnel " + t.id + " of " + name_of(t) + " (the pod is gone)";
      if (!dry_run)
        if (auto stopped = (*tunnels)->stop(t.id); !stopped) done = core::fail(stopped.error());
    } else if (t.status == "dead" && pod->status == PodStatus::running) {
      line = verb + "restart dead tunnel " + t.id + " to " + pod->name;
      if (!dry_run) {
        auto id = restart_tunnel(ctx, *pod, t);
        if (id)
          line += " (now " + *id + ")";
        else
          done = core::fail(id.error());
      }
    } else if (t.status == "dead") {
      line = verb + "remove dead tunnel entry " + t.id + " (" + pod->name + " is " +
             to_string(pod->status) + ")";
      if (!dry_run) {
        auto stopped = (*tunnels)->stop(t.id);
        if (!stopped)
          done = core::fail(stopped.error());
      }
    } else {
      continue;
    }
    if (!done) {
      failed = true;
      line += ": failed: " + done.error().message;
    }
    lines.push_back(line);
  }
  return lines;
}

ComfyView look_at_comfyui(Context& ctx, const Pod& pod, bool open_tunnel) {
  ComfyView view;
  if (pod.status == PodStatus::provisioning || pod.status == PodStatus::starting) {
    view.health = Health::starting;
    return view;
  }
  if (pod.status != PodStatus::running) {
    view.health = Health::not_running;
    return view;
  }
  auto tunnels = ctx.tunnels();
  if (!tunnels)
    return view_of(Health::unknown, tunnels.error().message);
  auto list = (*tunnels)->list();
  if (!list)
    return view_of(Health::unknown, list.error().message);
  std::optional<tunnel::Forward> via;
  for (const auto& t : *list)
    for (const auto& f : t.spec.forwards)
      if (t.spec.pod_id == pod.id && live(t) && f.remote_port == pod.comfy_port && !via)
        via = f;
  for (const auto& t : *list)
    if (t.spec.pod_id == pod.id && live(t) && t.spec.forwards.size() == 1 && !via)
      via = t.spec.forwards[0];
  if (!via && open_tunnel) {
    std::string port = std::to_string(pod.comfy_port);
    auto spec = tunnel_spec_for(ctx, pod, {port + ":" + port}, "127.0.0.1");
    auto started =
        spec ? (*tunnels)->ensure(*spec) : core::Result<TunnelInfo>(core::fail(spec.error()));
    if (!started)
      return view_of(Health::unknown, "cannot open a tunnel: " + started.error().message);
    via = started->spec.forwards.front();
  }
  if (!via)
    return view_of(Health::no_tunnel,
                   "no tunnel to its comfyui (autopod tunnel start " + pod.name + ")");
  std::string host = via->bind == "0.0.0.0" ? "127.0.0.1" : via->bind;
  auto client =
      comfy::ComfyClient::connect("http://" + host + ":" + std::to_string(via->local_port),
                                  core::make_curl_transport, core::system_clock());
  if (!client)
    return view_of(Health::unknown, client.error().message);
  if (auto stats = client->system_stats(); !stats)
    return view_of(Health::down, stats.error().message);
  auto queue = client->queue();
  auto history = client->history_list(8);
  if (!queue || !history)
    return view_of(Health::unknown, (!queue ? queue.error() : history.error()).message);
  view.health = Health::up;
  view.running = static_cast<int>(queue->running.size());
  view.pending = static_cast<int>(queue->pending.size());
  for (const auto& [id, entry] : *history)
    view.history_sig += id + ",";
  return view;
}

core::Status tear_down(Context& ctx, const Pod& pod, Teardown how) {
  TRY_ASSIGN(auto provider, ctx.provider());
  if (how == Teardown::stop) {
    TRY_ASSIGN(auto stopped, provider->stop_pod(pod.id));
    if (provider->capabilities().records) {
      TRY_ASSIGN(auto records, ctx.records());
      TRY(providers::remember(*records, stopped, std::nullopt, to_string(stopped.status)));
    }
    return {};
  }
  ASSERT(how == Teardown::down);
  TRY(provider->terminate_pod(pod.id));
  // Its tunnels point at an address that is gone now (none is not an error).
  if (auto tunnels = ctx.tunnels())
    (void)(*tunnels)->stop(pod.id);
  if (provider->capabilities().records) {
    TRY_ASSIGN(auto records, ctx.records());
    TRY(providers::remember(*records, pod, std::nullopt, "down"));
  }
  return {};
}

core::Status run_on_pod(Context& ctx, const Pod& pod, const std::string& command) {
  if (!pod.ssh)
    return core::fail(ErrorCode::not_found, "pod " + pod.name + " has no direct ssh endpoint");
  TRY_ASSIGN(auto cfg, ctx.config());
  TRY(ctx.ensure_key(pod));
  TRY_ASSIGN(auto session, connect_pod(*cfg, pod));
  TRY_ASSIGN(auto out, core::ssh_exec(*session, command, "", k_restart_timeout));
  if (out.exit_status != 0) {
    std::string err = out.err.substr(0, out.err.find_last_not_of("\n") + 1);
    std::string how = out.signal.empty() ? "exited " + std::to_string(out.exit_status)
                                         : "was killed by SIG" + out.signal;
    return core::fail(ErrorCode::remote,
                      "`" + command + "` on " + pod.name + " " + how + (err.empty() ? "" : ": " + err),
                      "check maintain.restart_command; try it with autopod ssh " + pod.name);
  }
  return {};
}

}  // namespace autopod::agent::maintain
