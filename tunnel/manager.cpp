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
#include "tunnel/tunnel_state.hpp"

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

json spec_to_json(const TunnelSpec& s) {
  json forwards = json::array();
  for (const auto& f : s.forwards)
    forwards.push_back({{"bind", f.bind}, {"local_port", f.local_port},
                        {"remote_host", f.remote_host}, {"remote_port", f.remote_port}});
  return {{"pod_id", s.pod_id}, {"pod_name", s.pod_name}, {"provider", s.provider},
          {"host", s.host}, {"port", s.port}, {"user", s.user}, {"key", s.key.string()},
          {"forwards", forwards}, {"window_bytes", s.window_bytes}, {"log_level", s.log_level},
          {"connect_timeout_ms", s.connect_timeout.count()},
          {"open_timeout_ms", s.open_timeout.count()}};
}

TunnelSpec spec_from_json(const json& j) {
  TunnelSpec s;
  s.pod_id = j.value("pod_id", "");
  s.pod_name = j.value("pod_name", "");
  s.provider = j.value("provider", "");
  s.host = j.at("host").get<std::string>();
  s.port = j.at("port").get<int>();
  s.user = j.value("user", "root");
  s.key = j.value("key", "");
  s.forwards.clear();
  for (const auto& f : j.at("forwards"))
    s.forwards.push_back({f.value("bind", "127.0.0.1"), f.at("local_port").get<int>(),
                          f.value("remote_host", "127.0.0.1"), f.at("remote_port").get<int>()});
  s.window_bytes = j.value("window_bytes", 8u << 20);
  s.log_level = j.value("log_level", "info");
  s.connect_timeout = std::chrono::milliseconds(j.value("connect_timeout_ms", 15000));
  s.open_timeout = std::chrono::milliseconds(j.value("open_timeout_ms", 10000));
  return s;
}

json to_json(const TunnelInfo& t) {
  json j = {{"id", t.id}, {"spec", spec_to_json(t.spec)}, {"pid", t.pid},
            {"start_time", t.start_time}, {"started_at", t.started_at}, {"status", t.status},
            {"last_error", t.last_error}, {"log_file", t.log_file.string()}};
  if (t.stats)
    j["stats"] = {{"bytes_to_pod", t.stats->bytes_to_pod},
                  {"bytes_from_pod", t.stats->bytes_from_pod},
                  {"connections_open", t.stats->connections_open},
                  {"connections_total", t.stats->connections_total},
                  {"opens_pending", t.stats->opens_pending},
                  {"ssh_sessions", t.stats->ssh_sessions},
                  {"reconnects", t.stats->reconnects}};
  else
    j["stats"] = nullptr;
  return j;
}

TunnelInfo info_from_json(const json& j) {
  TunnelInfo t;
  t.id = j.at("id").get<std::string>();
  t.spec = spec_from_json(j.at("spec"));
  t.pid = j.value("pid", 0);
  t.start_time = j.value("start_time", std::uint64_t{0});
  t.started_at = j.value("started_at", "");
  t.status = j.value("status", "");
  t.last_error = j.value("last_error", "");
  t.log_file = j.value("log_file", "");
  return t;
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

TunnelManager::TunnelManager(std::filesystem::path home, std::vector<std::string> daemon_argv)
    : m_home(std::move(home)), m_daemon_argv(std::move(daemon_argv)) {}

core::Result<std::vector<TunnelInfo>> TunnelManager::entries() {
  TRY_ASSIGN(auto doc, core::StateFile(state_file()).read());
  std::vector<TunnelInfo> out;
  try {
    json recorded = doc.value("tunnels", json::object());
    for (const auto& [id, entry] : recorded.items()) {
      TunnelInfo t = info_from_json(entry);
      if (!core::process_alive(t.pid, t.start_time) && t.status != "failed") t.status = "dead";
      out.push_back(std::move(t));
    }
  } catch (const json::exception& e) {
    return fail(ErrorCode::protocol, state_file().string() + " holds a bad tunnel entry: " + e.what(),
                "run autopod tunnel cleanup, or move the file aside");
  }
  std::sort(out.begin(), out.end(),
            [](const TunnelInfo& a, const TunnelInfo& b) { return a.started_at < b.started_at; });
  return out;
}

core::Result<std::vector<TunnelInfo>> TunnelManager::list() {
  TRY_ASSIGN(auto tunnels, entries());
  for (auto& t : tunnels) {
    if (t.status == "dead" || t.status == "failed") continue;
    auto answer = ask_daemon(m_home / "tunnels" / (t.id + ".sock"));
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
    if (t.spec.host == spec.host && t.spec.port == spec.port && same_forwards(t.spec, spec)) {
      if (reused) *reused = true;
      return t;
    }
    for (const auto& mine : spec.forwards)
      for (const auto& theirs : t.spec.forwards)
        if (mine.local_port == theirs.local_port)
          return fail(ErrorCode::invalid_argument,
                      "local port " + std::to_string(mine.local_port) + " is used by tunnel " +
                          t.id + " to " + (t.spec.pod_name.empty() ? t.spec.host : t.spec.pod_name),
                      "stop it (autopod tunnel stop " + t.id + ") or pick another port with -L");
  }
  TRY(core::ensure_dir(m_home / "tunnels", 0700));
  TRY(core::ensure_dir(m_home / "logs", 0700));
  std::string id = new_id();
  json input = {{"id", id}, {"home", m_home.string()}, {"spec", spec_to_json(spec)}};
  TRY_ASSIGN(auto report, core::spawn_daemon(m_daemon_argv, input.dump(),
                                             spec.connect_timeout + std::chrono::seconds(10)));
  auto log_file = m_home / "logs" / ("tunnel-" + id + ".log");
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
    bool current = t.spec.host == spec.host && t.spec.port == spec.port;
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
    TRY(core::StateFile(state_file()).update([&](json& doc) -> core::Status {
      if (doc.contains("tunnels")) doc["tunnels"].erase(t.id);
      return {};
    }));
    std::error_code ec;
    std::filesystem::remove(m_home / "tunnels" / (t.id + ".sock"), ec);
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
  TRY(core::StateFile(state_file()).update([&](json& doc) -> core::Status {
    for (const auto& t : removed)
      // Re-check under the lock: never drop an entry whose daemon is (again) alive.
      if (doc.contains("tunnels") && doc["tunnels"].contains(t.id) &&
          !core::process_alive(t.pid, t.start_time))
        doc["tunnels"].erase(t.id);
    return {};
  }));
  for (const auto& t : removed) {
    std::error_code ec;
    std::filesystem::remove(m_home / "tunnels" / (t.id + ".sock"), ec);
  }
  return removed;
}

}  // namespace autopod::tunnel
