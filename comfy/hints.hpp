#pragma once
// Internal to comfy/: what an HTTP status from a ComfyUI (or whatever answers in its place)
// means for the user, shared by plain requests and the WebSocket handshake
// (../shared/reference/comfyui-api.md §1: the origin check; §4: /ws).

#include <string>

namespace autopod::comfy {

// The next step for a refused request: 403 the origin check (a proxy adding Origin), 401/407 an
// authenticating proxy, 404 not a ComfyUI at that URL; empty for other statuses.
std::string refusal_hint(int http_status, bool empty_body);

}  // namespace autopod::comfy
