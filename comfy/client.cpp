#include "comfy/client.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "comfy/hints.hpp"
#include "comfy/json_fields.hpp"
#include "core/backoff.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/text.hpp"

namespace autopod::comfy {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

namespace {

std::uint64_t bytes(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<std::uint64_t>() : 0;
}

using fields::str;

QueueItem parse_item(const json& item) {
  // [number, prompt_id, prompt, extra_data, outputs_to_execute]; later versions may add more.
  if (!item.is_array() || item.size() < 5) throw json::type_error::create(302, "queue item is not a 5-element list", nullptr);
  QueueItem q;
  q.number = item[0].get<double>();
  q.prompt_id = item[1].get<std::string>();
  q.node_count = item[2].is_object() ? static_cast<int>(item[2].size()) : 0;
  if (item[3].is_object()) q.client_id = str(item[3], "client_id");
  return q;
}

}  // namespace

std::string refusal_hint(int status, bool empty_body) {
  switch (status) {
    case 401:
    case 407:
      return "something between autopod and ComfyUI asks for credentials (an authenticating "
             "proxy); ComfyUI itself has none: use the tunnel's http://127.0.0.1:PORT";
    case 403:
      return empty_body ? "ComfyUI's origin check refused the request; a proxy may be adding an "
                          "Origin header: use the tunnel's http://127.0.0.1:PORT directly"
                        : "the server refused the request: is that ComfyUI?";
    case 404: return "this path does not exist on that server: is it ComfyUI?";
    default: return {};
  }
}

core::Result<SystemStats> parse_system_stats(const json& body) {
  if (!body.is_object() || !body.contains("system") || !body["system"].is_object())
    return fail(ErrorCode::protocol, "/system_stats answered without a \"system\" object",
                "is this a ComfyUI server? check --url or the tunnel's remote port");
  const auto& sys = body["system"];
  SystemStats s;
  // Version fields arrived over time (2025-01 and later): all optional.
  s.comfyui_version = str(sys, "comfyui_version");
  s.python_version = str(sys, "python_version");
  s.pytorch_version = str(sys, "pytorch_version");
  s.os = str(sys, "os");
  s.ram_total = bytes(sys, "ram_total");
  s.ram_free = bytes(sys, "ram_free");
  if (auto d = body.find("devices"); d != body.end() && d->is_array())
    for (const auto& dev : *d)
      s.devices.push_back({str(dev, "name"), str(dev, "type"), bytes(dev, "vram_total"),
                           bytes(dev, "vram_free")});
  return s;
}

core::Result<QueueState> parse_queue(const json& body) {
  try {
    QueueState q;
    for (const auto& item : body.at("queue_running")) q.running.push_back(parse_item(item));
    for (const auto& item : body.at("queue_pending")) q.pending.push_back(parse_item(item));
    std::sort(q.pending.begin(), q.pending.end(),
              [](const QueueItem& a, const QueueItem& b) { return a.number < b.number; });
    return q;
  } catch (const json::exception& e) {
    return fail(ErrorCode::protocol, std::string("/queue answered an unexpected shape: ") + e.what());
  }
}

core::Result<ComfyClient> ComfyClient::connect(const std::string& url, TransportFactory transports,
                                               core::Clock& clock) {
  TRY_ASSIGN(auto parsed, core::parse_url(url));
  if (parsed.scheme != "http")
    return fail(ErrorCode::invalid_argument, "comfyui url " + url + ": only http:// is supported",
                "the tunnel serves http://127.0.0.1:PORT");
  return ComfyClient(std::move(parsed), std::move(transports), clock);
}

ComfyClient::ComfyClient(core::Url url, TransportFactory transports, core::Clock& clock)
    : m_url(std::move(url)),
      m_transports(std::move(transports)),
      m_transport(m_transports()),
      m_clock(&clock) {
  while (!m_url.path.empty() && m_url.path.back() == '/') m_url.path.pop_back();
  m_base = m_url.origin() + m_url.path;
}

ComfyClient ComfyClient::another() const { return ComfyClient(m_url, m_transports, *m_clock); }

core::Result<core::HttpResponse> ComfyClient::send(const core::HttpRequest& req) {
  auto r = m_transport->send(req);
  if (!r) {
    auto e = std::move(r).error();
    e.message = "comfyui not reachable: " + e.message;
    e.hint = "is ComfyUI running on the pod, and the tunnel up? autopod tunnel list";
    return fail(e);
  }
  return r;
}

core::Result<core::HttpResponse> ComfyClient::request(const std::string& method,
                                                      const std::string& path,
                                                      const std::string& body,
                                                      std::chrono::milliseconds timeout) {
  core::HttpRequest req;
  req.method = method;
  req.url = m_base + path;
  req.timeout = timeout;
  if (!body.empty() || method == "POST") {
    req.body = body.empty() ? "{}" : body;
    req.headers.emplace_back("Content-Type", "application/json");
  }
  TRY_ASSIGN(auto r, send(req));
  std::string where = method + " " + core::redact_url(req.url);
  if (r.status >= 200 && r.status < 300) return r;
  core::Error e;
  e.http_status = r.status;
  e.code = r.status >= 500 ? ErrorCode::remote : ErrorCode::protocol;
  e.message = "comfyui answered " + where + " with http " + std::to_string(r.status) +
              (r.body.empty() ? "" : ": " + r.body.substr(0, 300));
  e.hint = refusal_hint(r.status, r.body.empty());
  return fail(e);
}

core::Result<json> ComfyClient::get_json(const std::string& path, std::chrono::milliseconds timeout) {
  TRY_ASSIGN(auto response, request("GET", path, {}, timeout));
  try {
    return json::parse(response.body);
  } catch (const json::exception& e) {
    return fail(ErrorCode::protocol, "comfyui sent malformed JSON for GET " + path + ": " + e.what());
  }
}

core::Result<SystemStats> ComfyClient::system_stats(std::chrono::milliseconds timeout) {
  TRY_ASSIGN(auto body, get_json("/system_stats", timeout));
  return parse_system_stats(body);
}

core::Result<SystemStats> ComfyClient::wait_ready(std::chrono::milliseconds timeout) {
  using std::chrono::milliseconds;
  auto start = m_clock->now();
  auto deadline = start + timeout;
  core::Backoff backoff({milliseconds(250), milliseconds(4000), core::Jitter::none});
  for (int attempt = 1;; ++attempt) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - m_clock->now());
    auto stats = system_stats(std::clamp(left, milliseconds(1), k_request_timeout));
    if (stats) return stats;
    // A 404 or a non-ComfyUI body will not get better by waiting.
    if (stats.error().code == ErrorCode::protocol && stats.error().http_status != 0 &&
        stats.error().http_status != 403)
      return stats;
    if (m_clock->now() >= deadline) {
      auto e = stats.error();
      e.code = ErrorCode::timeout;
      auto elapsed = std::chrono::duration_cast<milliseconds>(m_clock->now() - start);
      e.message = "comfyui not ready after " + core::format_seconds(elapsed) + " (" +
                  std::to_string(attempt) + (attempt == 1 ? " try" : " tries") + "): " + e.message;
      return fail(e);
    }
    auto left_now = std::chrono::duration_cast<milliseconds>(deadline - m_clock->now());
    auto delay = std::min(backoff.next(), left_now);
    core::logger("comfy")->info("not ready ({}); retrying in {} ms", stats.error().message,
                                delay.count());
    m_clock->sleep_for(delay);
  }
}

core::Result<QueueState> ComfyClient::queue() {
  TRY_ASSIGN(auto body, get_json("/queue"));
  return parse_queue(body);
}

core::Result<int> ComfyClient::node_count() {
  TRY_ASSIGN(auto body, get_json("/object_info"));
  if (!body.is_object()) return fail(ErrorCode::protocol, "/object_info is not an object");
  return static_cast<int>(body.size());
}

core::Result<json> ComfyClient::history(const std::string& prompt_id, int max_items) {
  if (!prompt_id.empty()) {
    // {} with 200 while the prompt is queued or when the id is unknown: there is no 404.
    TRY_ASSIGN(auto body, get_json("/history/" + prompt_id));
    return body;
  }
  // Without max_items the answer can be hundreds of MB on a long-lived server.
  return get_json("/history?max_items=" + std::to_string(std::max(1, max_items)));
}

core::Result<std::vector<std::pair<std::string, json>>> ComfyClient::history_list(int max_items) {
  TRY_ASSIGN(auto response, request("GET", "/history?max_items=" + std::to_string(std::max(1, max_items))));
  // Parsed keeping the server's order (completion order), which a sorted object would lose.
  auto ordered = nlohmann::ordered_json::parse(response.body, nullptr, false);
  if (ordered.is_discarded() || !ordered.is_object())
    return fail(ErrorCode::protocol, "comfyui sent malformed JSON for GET /history");
  std::vector<std::pair<std::string, json>> out;
  for (auto& [id, entry] : ordered.items()) out.emplace_back(id, json::parse(entry.dump()));
  return out;
}

core::Status ComfyClient::interrupt(const std::string& prompt_id) {
  json body = json::object();
  if (!prompt_id.empty()) body["prompt_id"] = prompt_id;
  TRY(request("POST", "/interrupt", body.dump()));
  return {};
}

core::Status ComfyClient::cancel(const std::vector<std::string>& prompt_ids) {
  TRY(request("POST", "/queue", json{{"delete", prompt_ids}}.dump()));
  return {};
}

core::Status ComfyClient::free(bool unload_models, bool free_memory) {
  TRY(request("POST", "/free",
              json{{"unload_models", unload_models}, {"free_memory", free_memory}}.dump()));
  return {};
}

}  // namespace autopod::comfy
