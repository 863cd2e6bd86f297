#include "comfy/client.hpp"

#include <algorithm>

#include "core/log.hpp"

namespace autopod::comfy {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

namespace {

std::uint64_t bytes(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<std::uint64_t>() : 0;
}

std::string text(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

QueueItem parse_item(const json& item) {
  // [number, prompt_id, prompt, extra_data, outputs_to_execute]; later versions may add more.
  if (!item.is_array() || item.size() < 5) throw json::type_error::create(302, "queue item is not a 5-element list", nullptr);
  QueueItem q;
  q.number = item[0].get<double>();
  q.prompt_id = item[1].get<std::string>();
  q.node_count = item[2].is_object() ? static_cast<int>(item[2].size()) : 0;
  if (item[3].is_object()) q.client_id = text(item[3], "client_id");
  return q;
}

}  // namespace

core::Result<SystemStats> parse_system_stats(const json& body) {
  if (!body.is_object() || !body.contains("system") || !body["system"].is_object())
    return fail(ErrorCode::protocol, "/system_stats answered without a \"system\" object",
                "is this a ComfyUI server? check --url or the tunnel's remote port");
  const auto& sys = body["system"];
  SystemStats s;
  // Version fields arrived over time (2025-01 and later): all optional.
  s.comfyui_version = text(sys, "comfyui_version");
  s.python_version = text(sys, "python_version");
  s.pytorch_version = text(sys, "pytorch_version");
  s.os = text(sys, "os");
  s.ram_total = bytes(sys, "ram_total");
  s.ram_free = bytes(sys, "ram_free");
  if (auto d = body.find("devices"); d != body.end() && d->is_array())
    for (const auto& dev : *d)
      s.devices.push_back({text(dev, "name"), text(dev, "type"), bytes(dev, "vram_total"),
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

ComfyClient::ComfyClient(std::string base_url, std::unique_ptr<core::HttpTransport> transport,
                         core::Clock& clock)
    : m_base(std::move(base_url)), m_transport(std::move(transport)), m_clock(clock) {
  while (!m_base.empty() && m_base.back() == '/') m_base.pop_back();
}

core::Result<core::HttpResponse> ComfyClient::request(const std::string& method,
                                                      const std::string& path,
                                                      const std::string& body) {
  core::HttpRequest req;
  req.method = method;
  req.url = m_base + path;
  req.timeout = std::chrono::seconds(30);
  if (!body.empty() || method == "POST") {
    req.body = body.empty() ? "{}" : body;
    req.headers.emplace_back("Content-Type", "application/json");
  }
  auto r = m_transport->send(req);
  std::string where = method + " " + core::redact_url(req.url);
  if (!r) {
    auto e = std::move(r).error();
    e.message = "comfyui not reachable: " + e.message;
    e.hint = "is ComfyUI running on the pod, and the tunnel up? autopod tunnel list";
    return fail(e);
  }
  if (r->status >= 200 && r->status < 300) return r;
  core::Error e;
  e.http_status = r->status;
  e.code = r->status >= 500 ? ErrorCode::remote : ErrorCode::protocol;
  e.message = "comfyui answered " + where + " with http " + std::to_string(r->status) +
              (r->body.empty() ? "" : ": " + r->body.substr(0, 300));
  if (r->status == 403 && r->body.empty())
    e.hint = "ComfyUI's origin check refused the request; a proxy may be adding an Origin header";
  else if (r->status == 404)
    e.hint = "this path does not exist on that server: is it ComfyUI?";
  return fail(e);
}

core::Result<json> ComfyClient::get_json(const std::string& path) {
  TRY_ASSIGN(auto response, request("GET", path));
  try {
    return json::parse(response.body);
  } catch (const json::exception& e) {
    return fail(ErrorCode::protocol, "comfyui sent malformed JSON for GET " + path + ": " + e.what());
  }
}

core::Result<SystemStats> ComfyClient::system_stats() {
  TRY_ASSIGN(auto body, get_json("/system_stats"));
  return parse_system_stats(body);
}

core::Result<SystemStats> ComfyClient::wait_ready(std::chrono::milliseconds timeout) {
  auto deadline = m_clock.now() + timeout;
  std::chrono::milliseconds delay{250};
  for (int attempt = 1;; ++attempt) {
    auto stats = system_stats();
    if (stats) return stats;
    // A 404 or a non-ComfyUI body will not get better by waiting.
    if (stats.error().code == ErrorCode::protocol && stats.error().http_status != 0 &&
        stats.error().http_status != 403)
      return stats;
    if (m_clock.now() + delay >= deadline) {
      auto e = stats.error();
      e.code = ErrorCode::timeout;
      e.message = "comfyui not ready after " + std::to_string(attempt) + " tries: " + e.message;
      return fail(e);
    }
    core::logger("comfy")->info("not ready ({}); retrying in {} ms", stats.error().message,
                                delay.count());
    m_clock.sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(4000));
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
