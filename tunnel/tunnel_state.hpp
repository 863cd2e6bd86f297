#pragma once
// tunnels.json shapes (internal to tunnel/).

#include <nlohmann/json.hpp>

#include "tunnel/tunnel.hpp"

namespace autopod::tunnel {

nlohmann::json spec_to_json(const TunnelSpec& spec);
TunnelSpec spec_from_json(const nlohmann::json& j);  // throws nlohmann::json::exception
TunnelInfo info_from_json(const nlohmann::json& j);  // throws nlohmann::json::exception

}  // namespace autopod::tunnel
