#pragma once
// Where a command, or the agent service, reaches a pod's ComfyUI: a URL as given, or the pod's
// own through a tunnel that is reused, replaced or started as needed ("ensure tunnel").

#include <functional>
#include <string>

#include "agent/context.hpp"
#include "core/result.hpp"

namespace autopod::agent {

struct ComfyTarget {
  std::string pod;  // id or name; empty: the only pod
  std::string url;  // talk to this ComfyUI directly
  bool no_tunnel = false;
  int local_port = 8188;
  int remote_port = 0;  // 0: the pod's ComfyUI port (8188, or hosts.<name>.comfy_port)
};

// The base URL of the target's ComfyUI ("http://127.0.0.1:8188"), after ensuring the tunnel to
// the pod; `note` hears "started tunnel ID to POD" when one had to be started. The provider's and
// the tunnel's errors (pod not found or not running, auth refused) otherwise.
core::Result<std::string> comfy_url_for(Context& ctx, const ComfyTarget& t,
                                        const std::function<void(const std::string&)>& note);

}  // namespace autopod::agent
