#include "agent/comfy_target.hpp"

#include "agent/cli/commands.hpp"
#include "agent/maintain/maintain.hpp"

namespace autopod::agent {

core::Result<std::string> comfy_url_for(Context& ctx, const ComfyTarget& t,
                                        const std::function<void(const std::string&)>& note) {
  if (!t.url.empty()) return t.url;
  std::string local = "http://127.0.0.1:" + std::to_string(t.local_port);
  if (t.no_tunnel) return local;
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto pod, providers::find_pod(*provider, t.pod));
  int remote = t.remote_port != 0 ? t.remote_port : pod.comfy_port;
  TRY_ASSIGN(auto spec, tunnel_spec_for(ctx, pod,
                                        {std::to_string(t.local_port) + ":" + std::to_string(remote)},
                                        "127.0.0.1"));
  TRY_ASSIGN(auto tunnels, ctx.tunnels());
  bool reused = false;
  TRY_ASSIGN(auto info, tunnels->ensure(spec, &reused));
  if (!reused && note) note("started tunnel " + info.id + " to " + pod.name);
  // autopod using the pod (a comfy command, an agent task) keeps `autopod maintain` from taking
  // it for idle.
  TRY_ASSIGN(auto cfg, ctx.config());
  (void)maintain::record_activity(cfg->home, pod.id, maintain::now());
  return local;
}

}  // namespace autopod::agent
