#pragma once
// Internal to agent/maintain/: the steps of a pass that touch the world: tunnels, ComfyUI
// through a tunnel, and the actions (down, stop, restart command over ssh).

#include <chrono>
#include <string>
#include <vector>

#include "agent/context.hpp"
#include "agent/maintain/decide.hpp"
#include "tunnel/tunnel.hpp"

namespace autopod::agent::maintain {

// Tunnels of pods that are gone are stopped; a dead tunnel of a running pod is restarted with
// its forwards; other dead entries are removed. Tunnels of another provider's pods are left
// alone. Returns one line per thing done (or, with `dry_run`, that would be done).
std::vector<std::string> tend_tunnels(Context& ctx,
                                      const std::vector<providers::Pod>& pods,
                                      bool dry_run,
                                      bool& failed);

// Looks at the pod's ComfyUI through its live tunnel: the forward to the pod's ComfyUI port,
// or a tunnel's only forward. With `open_tunnel`, a running pod without one gets a tunnel
// COMFY_PORT:COMFY_PORT first, as the comfy commands make.
ComfyView look_at_comfyui(Context& ctx, const providers::Pod& pod, bool open_tunnel);

// Takes the pod down (terminate, volume and pods.json record kept), or stops it.
core::Status tear_down(Context& ctx, const providers::Pod& pod, Teardown how);

// Runs `command` on the pod over SSH exec (libssh2: the pod's key, its host key pinned in
// AUTOPOD_HOME/known_hosts; nothing can prompt), bounded by k_restart_timeout. remote error with
// the command's exit status and stderr when it fails; network/auth errors from the session.
inline constexpr std::chrono::minutes k_restart_timeout{2};
core::Status run_on_pod(Context& ctx, const providers::Pod& pod, const std::string& command);

}  // namespace autopod::agent::maintain
