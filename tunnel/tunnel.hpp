#pragma once
// SSH tunnels to pods: detached forwarding daemons whose state persists in
// AUTOPOD_HOME/tunnels.json, managed by TunnelManager (start, stop, list, cleanup, ensure).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/home.hpp"
#include "core/result.hpp"
#include "core/ssh_endpoint.hpp"

namespace autopod::tunnel {

// One -L forward: bind:local_port on this machine to remote_host:remote_port seen from the pod.
struct Forward {
  std::string bind = "127.0.0.1";
  int local_port = 8188;
  std::string remote_host = "127.0.0.1";
  int remote_port = 8188;
};

// Parses ssh -L forms: PORT, LOCAL:REMOTE, LOCAL:HOST:REMOTE, BIND:LOCAL:HOST:REMOTE.
// `bind` is used where the text names none. invalid_argument with the expected forms.
core::Result<Forward> parse_forward(const std::string& text, const std::string& bind);

struct TunnelSpec {
  std::string pod_id;
  std::string pod_name;
  std::string provider;
  core::SshEndpoint ssh;  // the pod's direct SSH endpoint and key (empty key: ssh-agent)
  std::vector<Forward> forwards = {Forward{}};
  std::uint32_t window_bytes = 8u << 20;  // receive window of each channel (data from the pod)
  std::string log_level = "info";
  std::chrono::milliseconds connect_timeout{15000};
  // How long a client connection may wait for its channel (the pod connecting to the target)
  // before it is closed; other connections never wait for it.
  std::chrono::milliseconds open_timeout{10000};
};

struct TunnelStats {
  std::uint64_t bytes_to_pod = 0;
  std::uint64_t bytes_from_pod = 0;
  int connections_open = 0;
  std::uint64_t connections_total = 0;
  int opens_pending = 0;  // client connections still waiting for their channel
  int ssh_sessions = 0;   // SSH connections to the pod (more while opens are slow)
  int reconnects = 0;
};

// A tunnel as recorded in tunnels.json, with what `list` learns when it looks.
struct TunnelInfo {
  std::string id;
  TunnelSpec spec;
  pid_t pid = 0;
  std::uint64_t start_time = 0;  // of the process: a reused PID is not our daemon
  std::string started_at;
  // active | reconnecting | connecting | dead | failed (the daemon gave up; see last_error)
  std::string status;
  std::string last_error;
  std::optional<TunnelStats> stats;  // from the daemon's control socket, when it answers
  std::filesystem::path log_file;
};

nlohmann::json to_json(const TunnelInfo& info);

class TunnelManager {
 public:
  // `daemon_argv`: the command that runs run_tunnel_daemon() (autopod-tunneld).
  TunnelManager(core::Home home, std::vector<std::string> daemon_argv);

  // Starts a daemon and returns once it has authenticated and listens on every forward, or
  // with the daemon's reason (auth refused, host key changed, port in use by PID..., pod
  // unreachable). A live tunnel to the same endpoint with the same forwards is returned as is.
  core::Result<TunnelInfo> start(const TunnelSpec& spec, bool* reused = nullptr);
  // Reuses a live tunnel to the pod's current endpoint that has the forwards, replaces a dead or
  // outdated one, or starts one.
  core::Result<TunnelInfo> ensure(const TunnelSpec& spec, bool* reused = nullptr);
  // Stops tunnels by id, pod id or pod name; returns the ones stopped (not_found when none).
  core::Result<std::vector<TunnelInfo>> stop(const std::string& id_or_pod);
  core::Result<std::vector<TunnelInfo>> stop_all();
  // Every tunnel with its liveness checked and, for live ones, the daemon's own status.
  core::Result<std::vector<TunnelInfo>> list();
  // Removes the entries whose daemon is gone; returns them.
  core::Result<std::vector<TunnelInfo>> cleanup();

  std::filesystem::path state_file() const { return m_home.tunnels_json(); }

 private:
  // The recorded tunnels with liveness checked (dead: "dead"), without asking the daemons for
  // their stats: enough for start, ensure, stop and cleanup.
  core::Result<std::vector<TunnelInfo>> entries();

  core::Home m_home;
  std::vector<std::string> m_daemon_argv;
};

// The daemon: reads its TunnelSpec as JSON on stdin (with "id" and "home"), binds the
// forwards, connects, records itself in tunnels.json, reports readiness on fd 3, then serves
// until SIGTERM (removing its entry) — reconnecting with backoff when the link drops.
int run_tunnel_daemon();

}  // namespace autopod::tunnel
