#pragma once
// Every path under AUTOPOD_HOME, named once. Made by load_config (from --home, AUTOPOD_HOME or
// ~/.autopod) and handed down; autopod-tunneld receives the root in its spec and builds the
// same value, so both sides of that boundary spell each path the same way.

#include <filesystem>
#include <string>

namespace autopod::core {

class Home {
 public:
  Home() = default;
  explicit Home(std::filesystem::path root) : m_root(std::move(root)) {}

  const std::filesystem::path& root() const { return m_root; }

  std::filesystem::path config_file() const { return m_root / "config.yaml"; }
  std::filesystem::path pods_json() const { return m_root / "pods.json"; }
  std::filesystem::path tunnels_json() const { return m_root / "tunnels.json"; }
  // Host keys pinned per host and port, shared by the tunnels and `autopod ssh`.
  std::filesystem::path known_hosts() const { return m_root / "known_hosts"; }
  // autopod's own key pair (made on first use), for pods created by autopod.
  std::filesystem::path default_ssh_key() const { return m_root / "id_ed25519"; }
  std::filesystem::path plugins() const { return m_root / "plugins"; }
  // Control sockets of the tunnel daemons (0700).
  std::filesystem::path tunnels_dir() const { return m_root / "tunnels"; }
  std::filesystem::path tunnel_socket(const std::string& id) const {
    return tunnels_dir() / (id + ".sock");
  }
  // Logs of detached daemons (0700).
  std::filesystem::path logs() const { return m_root / "logs"; }
  std::filesystem::path tunnel_log(const std::string& id) const {
    return logs() / ("tunnel-" + id + ".log");
  }
  // autopod maintain: its memory between runs (first seen down, last activity, time run today),
  // the lock that makes an overlapping run skip, and the log of every action it took.
  std::filesystem::path maintain_state() const { return m_root / "maintain.json"; }
  std::filesystem::path maintain_lock() const { return m_root / "maintain.lock"; }
  std::filesystem::path maintain_log() const { return logs() / "maintain.log"; }
  // When an autopod command last used each pod's ComfyUI (comfy run, ...), for maintain's idle.
  std::filesystem::path activity() const { return m_root / "activity.json"; }
  // Coming with the models and agent work: task records, the agent's secrets, its outputs and
  // saved workflows.
  std::filesystem::path tasks() const { return m_root / "tasks"; }
  std::filesystem::path agent_token() const { return m_root / "agent.token"; }
  std::filesystem::path webhook_secret() const { return m_root / "agent.webhook-secret"; }
  std::filesystem::path outputs() const { return m_root / "outputs"; }
  std::filesystem::path workflows() const { return m_root / "workflows"; }

 private:
  std::filesystem::path m_root;
};

}  // namespace autopod::core
