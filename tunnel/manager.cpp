#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "core/daemon.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/random.hpp"
#include "core/state_file.hpp"
#include "tunnel/tunnel.hpp"
#include "tunnel/registry.hpp"

namespace autopod::tunnel {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

// ---- forwards and JSON ---------------------------------------------------------------------

core::Result<Forward> parse_forward(const std::string& text, const std::string& bind) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    auto colon = text.find(':', start);
    parts.push_back(text.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  auto port = [&](const std::string& p) -> int {
    if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit)) return -1;
    int v = std::stoi(p);
    return v >= 1 && v <= 65535 ? v : -1;
  };
  Forward f;
  f.bind = bind.empty() ? "127.0.0.1" : bind;
  switch (parts.size()) {
    case 1: f.local_port = f.remote_port = port(parts[0]); break;
    case 2: f.local_port = port(parts[0]); f.remote_port = port(parts[1]); break;
    case 3: f.local_port = port(parts[0]); f.remote_host = parts[1]; f.remote_port = port(parts[2]); break;
    case 4:
      f.bind = parts[0];
      f.local_port = port(parts[1]);
      f.remote_host = parts[2];
      f.remote_port = port(parts[3]);
      break;
    default: f.local_port = -1;
  }
  if (f.local_port < 0 || f.remote_port < 0 || f.remote_host.empty() || f.bind.empty())
    return fail(ErrorCode::invalid_argument, "bad forward '" + text + "'",
                "use PORT, LOCAL:REMOTE, LOCAL:HOST:REMOTE or BIND:LOCAL:HOST:REMOTE, "
                "e.g. -L 8188:8188");
  return f;
}

// ---- manager -------------------------------------------------------------------------------

namespace {

std::string new_id() { return "t-" + core::random_hex(6); }

// What the daemon says over its control socket; nullopt when it does not answer in time.
std::optional<json> ask_daemon(const std::filesystem::path& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  auto path = socket_path.string();
  if (path.size() >= sizeof addr.sun_path) return std::nullopt;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  std::string text;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) break;  // a daemon busy connecting answers later
    char buf[1024];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

bool same_forwards(const TunnelSpec& a, const TunnelSpec& b) {
  if (a.forwards.size() != b.forwards.size()) return false;
  for (std::size_t i = 0; i < a.forwards.size(); ++i) {
    const auto& x = a.forwards[i];
    const auto& y = b.forwards[i];
    if (x.bind != y.bind || x.local_port != y.local_port || x.remote_host != y.remote_host ||
        x.remote_port != y.remote_port)
      return false;
  }
  return true;
}

}  // namespace

TunnelManager::TunnelManager(core::Home home, std::vector<std::string> daemon_argv)
    : m_home(std::move(home)), m_daemon_argv(std::move(daemon_argv)) {}

core::Result<std::vector<TunnelInfo>> TunnelManager::entries() {
  TRY_ASSIGN(auto out, Registry(m_home).all());
  for (auto& t : out)
    if (!core::process_alive(t.pid, t.start_time) && t.status != "failed") t.status = "dead";
  std::sort(out.begin(), out.end(),
            [](const TunnelInfo& a, const TunnelInfo& b) { return a.started_at < b.started_at; });
  return out;
}

core::Result<std::vector<TunnelInfo>> TunnelManager::list() {
  TRY_ASSIGN(auto tunnels, entries());
  for (auto& t : tunnels) {
    if (t.status == "dead" || t.status == "failed") continue;
    auto answer = ask_daemon(m_home.tunnel_socket(t.id));
    if (!answer) continue;  // busy (e.g. in a blocking reconnect): the recorded status stands
    t.status = answer->value("status", t.status);
    TunnelStats s;
    s.bytes_to_pod = answer->value("bytes_to_pod", std::uint64_t{0});
    s.bytes_from_pod = answer->value("bytes_from_pod", std::uint64_t{0});
    s.connections_open = answer->value("connections_open", 0);
    s.connections_total = answer->value("connections_total", std::uint64_t{0});
    s.opens_pending = answer->value("opens_pending", 0);
    s.ssh_sessions = answer->value("ssh_sessions", 0);
    s.reconnects = answer->value("reconnects", 0);
    t.stats = s;
    if (auto e = answer->value("last_error", ""); !e.empty()) t.last_error = e;
  }
  return tunnels;
}

core::Result<TunnelInfo> TunnelManager::start(const TunnelSpec& spec, bool* reused) {
  if (reused) *reused = false;
  TRY_ASSIGN(auto tunnels, entries());
  for (const auto& t : tunnels) {
    if (t.status == "dead" || t.status == "failed") continue;
    if (t.spec.ssh.host == spec.ssh.host && t.spec.ssh.port == spec.ssh.port && same_forwards(t.spec, spec)) {
      if (reused) *reused = true;
      return t;
    }
    for (const auto& mine : spec.forwards)
      for (const auto& theirs : t.spec.forwards)
        if (mine.local_port == theirs.local_port)
          return fail(ErrorCode::invalid_argument,
                      "local port " + std::to_string(mine.local_port) + " is used by tunnel " +
                          t.id + " to " + (t.spec.pod_name.empty() ? t.spec.ssh.host : t.spec.pod_name),
                      "stop it (autopod tunnel stop " + t.id + ") or pick another port with -L");
  }
  TRY(core::ensure_dir(m_home.tunnels_dir(), 0700));
  TRY(core::ensure_dir(m_home.logs(), 0700));
  std::string id = new_id();
  json input = {{"id", id}, {"home", m_home.root().string()}, {"spec", spec_to_json(spec)}};
  TRY_ASSIGN(auto report, core::spawn_daemon(m_daemon_argv, input.dump(),
                                             spec.connect_timeout + std::chrono::seconds(10)));
  auto log_file = m_home.tunnel_log(id);
  json answer;
  try {
    answer = json::parse(report);
  } catch (const json::exception&) {
    return fail(ErrorCode::internal, "the tunnel daemon exited before it was ready",
                "see " + log_file.string());
  }
  if (!answer.value("ok", false)) {
    core::Error e = core::make_error(ErrorCode::remote, answer.value("message", "tunnel failed"),
                                     answer.value("hint", ""));
    for (int i = 0; i <= static_cast<int>(ErrorCode::internal); ++i)
      if (answer.value("code", "") == core::to_string(static_cast<ErrorCode>(i)))
        e.code = static_cast<ErrorCode>(i);
    return fail(e);
  }
  TunnelInfo info;
  info.id = id;
  info.spec = spec;
  info.pid = answer.value("pid", 0);
  info.start_time = answer.value("start_time", std::uint64_t{0});
  info.status = "active";
  info.log_file = log_file;
  return info;
}

core::Result<TunnelInfo> TunnelManager::ensure(const TunnelSpec& spec, bool* reused) {
  TRY_ASSIGN(auto tunnels, entries());
  for (const auto& t : tunnels) {
    if (t.spec.pod_id != spec.pod_id || spec.pod_id.empty()) continue;
    bool current = t.spec.ssh.host == spec.ssh.host && t.spec.ssh.port == spec.ssh.port;
    bool covers = std::all_of(spec.forwards.begin(), spec.forwards.end(), [&](const Forward& f) {
      return std::any_of(t.spec.forwards.begin(), t.spec.forwards.end(), [&](const Forward& g) {
        return g.local_port == f.local_port && g.remote_port == f.remote_port &&
               g.remote_host == f.remote_host && g.bind == f.bind;
      });
    });
    bool live = t.status == "active" || t.status == "reconnecting" || t.status == "connecting";
    if (live && current && covers) {
      if (reused) *reused = true;
      return t;
    }
    // Dead, failed, or pointing at the pod's old address (ports change on every start): replace
    // it. A live one with other forwards (say Jupyter's) stays; start() reports port clashes.
    if (!live || !current) TRY(stop(t.id));
  }
  return start(spec, reused);
}

core::Result<std::vector<TunnelInfo>> TunnelManager::stop(const std::string& id_or_pod) {
  TRY_ASSIGN(auto tunnels, entries());
  std::vector<TunnelInfo> stopped;
  for (auto& t : tunnels) {
    if (t.id != id_or_pod && t.spec.pod_id != id_or_pod && t.spec.pod_name != id_or_pod) continue;
    if (core::process_alive(t.pid, t.start_time))
      TRY(core::terminate_process(t.pid, std::chrono::seconds(5)));
    // The daemon removes its own entry on SIGTERM; a dead one's is removed here.
    TRY(Registry(m_home).remove(t.id));
    stopped.push_back(t);
  }
  if (stopped.empty()) {
    std::string known;
    for (const auto& t : tunnels) known += (known.empty() ? "" : ", ") + t.id + " (" + t.spec.pod_name + ")";
    return fail(ErrorCode::not_found, "no tunnel '" + id_or_pod + "'",
                known.empty() ? "there are no tunnels" : "tunnels: " + known);
  }
  return stopped;
}

core::Result<std::vector<TunnelInfo>> TunnelManager::stop_all() {
  TRY_ASSIGN(auto tunnels, entries());
  std::vector<TunnelInfo> stopped;
  for (const auto& t : tunnels) {
    TRY_ASSIGN(auto s, stop(t.id));
    stopped.insert(stopped.end(), s.begin(), s.end());
  }
  return stopped;
}

core::Result<std::vector<TunnelInfo>> TunnelManager::cleanup() {
  TRY_ASSIGN(auto tunnels, entries());
  std::vector<TunnelInfo> removed;
  for (const auto& t : tunnels)
    if (t.status == "dead" || t.status == "failed") removed.push_back(t);
  TRY(Registry(m_home).remove_dead(removed));
  return removed;
}

}  // namespace autopod::tunnel
