// tunnels.json's one owner (see registry.hpp).

#include "tunnel/registry.hpp"

#include "core/daemon.hpp"

namespace autopod::tunnel {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

json spec_to_json(const TunnelSpec& s) {
  json forwards = json::array();
  for (const auto& f : s.forwards)
    forwards.push_back({{"bind", f.bind}, {"local_port", f.local_port},
                        {"remote_host", f.remote_host}, {"remote_port", f.remote_port}});
  return {{"pod_id", s.pod_id}, {"pod_name", s.pod_name}, {"provider", s.provider},
          {"host", s.ssh.host}, {"port", s.ssh.port}, {"user", s.ssh.user}, {"key", s.ssh.key.string()},
          {"forwards", forwards}, {"window_bytes", s.window_bytes}, {"log_level", s.log_level},
          {"connect_timeout_ms", s.connect_timeout.count()},
          {"open_timeout_ms", s.open_timeout.count()}};
}

TunnelSpec spec_from_json(const json& j) {
  TunnelSpec s;
  s.pod_id = j.value("pod_id", "");
  s.pod_name = j.value("pod_name", "");
  s.provider = j.value("provider", "");
  s.ssh.host = j.at("host").get<std::string>();
  s.ssh.port = j.at("port").get<int>();
  s.ssh.user = j.value("user", "root");
  s.ssh.key = j.value("key", "");
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

namespace {

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

}  // namespace

Registry::Registry(core::Home home) : m_home(std::move(home)), m_file(m_home.tunnels_json()) {}

core::Result<std::vector<TunnelInfo>> Registry::all() const {
  TRY_ASSIGN(auto doc, m_file.read());
  std::vector<TunnelInfo> out;
  try {
    json recorded = doc.value("tunnels", json::object());
    for (const auto& [id, entry] : recorded.items()) out.push_back(info_from_json(entry));
  } catch (const json::exception& e) {
    return fail(ErrorCode::protocol, m_home.tunnels_json().string() + " holds a bad tunnel entry: " + e.what(),
                "run autopod tunnel cleanup, or move the file aside");
  }
  return out;
}

core::Status Registry::put(const TunnelInfo& info) {
  auto entry = to_json(info);
  entry.erase("stats");
  TRY(m_file.update([&](json& doc) -> core::Status {
    doc["tunnels"][info.id] = entry;
    return {};
  }));
  return {};
}

core::Status Registry::set_status(const std::string& id, const std::string& status,
                                  const std::string& error) {
  TRY(m_file.update([&](json& doc) -> core::Status {
    if (!doc.contains("tunnels") || !doc["tunnels"].contains(id)) return {};
    doc["tunnels"][id]["status"] = status;
    doc["tunnels"][id]["last_error"] = error;
    return {};
  }));
  return {};
}

core::Status Registry::remove(const std::string& id) {
  TRY(m_file.update([&](json& doc) -> core::Status {
    if (doc.contains("tunnels")) doc["tunnels"].erase(id);
    return {};
  }));
  std::error_code ec;
  std::filesystem::remove(m_home.tunnel_socket(id), ec);
  return {};
}

core::Status Registry::remove_dead(const std::vector<TunnelInfo>& dead) {
  TRY(m_file.update([&](json& doc) -> core::Status {
    for (const auto& t : dead)
      // Re-checked under the lock: never drop an entry whose daemon is (again) alive.
      if (doc.contains("tunnels") && doc["tunnels"].contains(t.id) &&
          !core::process_alive(t.pid, t.start_time))
        doc["tunnels"].erase(t.id);
    return {};
  }));
  for (const auto& t : dead) {
    std::error_code ec;
    std::filesystem::remove(m_home.tunnel_socket(t.id), ec);
  }
  return {};
}

}  // namespace autopod::tunnel
