#pragma once
// tunnels.json, internal to tunnel/: its one owner. The manager (in autopod) and each daemon
// (autopod-tunneld) read and write their entries only through a Registry, so the file's shape
// and its paths are spelled once on both sides of the process boundary.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/home.hpp"
#include "core/result.hpp"
#include "core/state_file.hpp"
#include "tunnel/tunnel.hpp"

namespace autopod::tunnel {

// The spec as the daemon receives it on stdin and as tunnels.json keeps it (flat SSH fields:
// host, port, user, key). spec_from_json throws nlohmann::json::exception on a bad shape.
nlohmann::json spec_to_json(const TunnelSpec& spec);
TunnelSpec spec_from_json(const nlohmann::json& j);

class Registry {
 public:
  explicit Registry(core::Home home);

  // Every recorded tunnel, as recorded (liveness not checked); protocol error naming the file
  // for an entry of the wrong shape.
  core::Result<std::vector<TunnelInfo>> all() const;
  // Inserts or replaces the entry of info.id (without stats, which only the daemon knows live).
  core::Status put(const TunnelInfo& info);
  // Sets an entry's status and last error; nothing when the entry is gone.
  core::Status set_status(const std::string& id, const std::string& status, const std::string& error);
  // Removes the entry and its control socket.
  core::Status remove(const std::string& id);
  // Removes the entries of `dead` whose daemon is still gone when checked under the lock.
  core::Status remove_dead(const std::vector<TunnelInfo>& dead);

  const core::Home& home() const { return m_home; }

 private:
  core::Home m_home;
  core::StateFile m_file;
};

}  // namespace autopod::tunnel
