#include "sandbox/comfy_fake.hpp"

#include <algorithm>
#include <mutex>
#include <vector>

#include "sandbox/http_server.hpp"

namespace autopod::sandbox {

using nlohmann::json;

namespace {

HttpReply json_reply(const json& body, int status = 200) {
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "application/json; charset=utf-8";
  r.body = body.dump();
  return r;
}

HttpReply empty_reply() {
  HttpReply r;
  r.headers["Content-Type"] = "application/octet-stream";
  return r;
}

HttpReply text_reply(int status, const std::string& text) {
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "text/plain; charset=utf-8";
  r.body = text;
  return r;
}

// aiohttp's answer when a handler raises (e.g. on malformed JSON).
HttpReply server_error() { return text_reply(500, "500 Internal Server Error\n\nServer got itself in trouble"); }

// The /system_stats body recorded from ComfyUI 0.3.64 (CPU) in the transcript.
const json k_system_stats = json::parse(R"({"system": {"os": "posix", "ram_total": 25276510208,
  "ram_free": 24483700736, "comfyui_version": "0.3.64", "required_frontend_version": "1.27.10",
  "installed_templates_version": null, "required_templates_version": "0.1.95",
  "python_version": "3.11.2 (main, Apr 28 2025, 14:11:48) [GCC 12.2.0]", "pytorch_version": "1.13.0a0",
  "embedded_python": false, "argv": ["main.py", "--cpu", "--listen", "127.0.0.1", "--port", "8188"]},
  "devices": [{"name": "cpu", "type": "cpu", "index": null, "vram_total": 25276510208,
  "vram_free": 24483700736, "torch_vram_total": 25276510208, "torch_vram_free": 24483700736}]})");

bool is_loopback_host(const std::string& host) {
  std::string name = host.substr(0, host.rfind(':') == std::string::npos ? host.size() : host.rfind(':'));
  return name.rfind("127.", 0) == 0 || name == "localhost" || name == "[::1]";
}

}  // namespace

struct ComfyFake::Impl {
  mutable std::mutex mutex;
  json running = json::array();
  std::vector<json> pending;  // kept in insertion order: the server's heap is not sorted either
  json history = json::object();
  json last_free;
  int interrupts = 0;
  int refuse = 0;
  bool saw_origin = false;
  std::chrono::milliseconds delay{0};
  HttpServer server{[this](const HttpExchange& ex) { return handle(ex); }};

  HttpReply handle(const HttpExchange& ex) {
    std::lock_guard lock(mutex);
    HttpReply r = route(ex);
    if (delay.count() > 0) r.delay = delay;
    return r;
  }

  HttpReply route(const HttpExchange& ex) {
    if (refuse > 0) {
      --refuse;
      HttpReply r;
      r.drop = true;
      return r;
    }
    // The CSRF guard: Host and Origin both present, Host on loopback, host[:port] differ -> 403.
    auto origin = ex.headers.find("origin");
    if (origin != ex.headers.end()) {
      saw_origin = true;
      auto host = ex.headers.count("host") ? ex.headers.at("host") : "";
      std::string o = origin->second;
      auto scheme = o.find("://");
      if (scheme != std::string::npos) o = o.substr(scheme + 3);
      if (o != "null" && !host.empty() && is_loopback_host(host) && o != host) {
        HttpReply r;
        r.status = 403;
        return r;
      }
    }
    // Every route is also served under /api.
    std::string path = ex.path.rfind("/api/", 0) == 0 ? ex.path.substr(4) : ex.path;
    std::string query = ex.target.size() > ex.path.size() ? ex.target.substr(ex.path.size() + 1) : "";
    const std::string& m = ex.method;
    if (path == "/system_stats" && m == "GET") return json_reply(k_system_stats);
    if (path == "/prompt" && m == "GET")
      return json_reply({{"exec_info", {{"queue_remaining", running.size() + pending.size()}}}});
    if (path == "/queue" && m == "GET") {
      json p = json::array();
      for (auto it = pending.rbegin(); it != pending.rend(); ++it) p.push_back(*it);
      return json_reply({{"queue_running", running}, {"queue_pending", p}});
    }
    if (path == "/object_info" && m == "GET") {
      json info = json::object();
      for (const char* c : {"EmptyImage", "LoadImage", "SaveImage", "PreviewImage", "ImageInvert",
                            "KSampler", "CheckpointLoaderSimple"})
        info[c] = {{"name", c}, {"display_name", c}, {"input", {{"required", json::object()}}},
                   {"output", json::array()}, {"output_node", std::string(c).find("Image") == 0}};
      return json_reply(info);
    }
    if (path.rfind("/history", 0) == 0 && m == "GET") {
      if (path.size() > 9) {
        std::string id = path.substr(9);
        if (!history.contains(id)) return json_reply(json::object());  // no 404, ever
        return json_reply({{id, history[id]}});
      }
      json out = json::object();
      std::size_t max_items = history.size();
      if (auto at = query.find("max_items="); at != std::string::npos) {
        try {
          max_items = static_cast<std::size_t>(std::stoul(query.substr(at + 10)));
        } catch (...) {
          return server_error();  // a non-integer max_items is a 500 on the real server
        }
      }
      std::size_t skip = history.size() > max_items ? history.size() - max_items : 0, i = 0;
      for (const auto& [id, entry] : history.items())
        if (i++ >= skip) out[id] = entry;
      return json_reply(out);
    }
    if (m == "POST" && (path == "/queue" || path == "/free" || path == "/interrupt" ||
                        path == "/history")) {
      json body;
      try {
        body = json::parse(ex.body);
      } catch (...) {
        if (path != "/interrupt") return server_error();  // /interrupt tolerates a bad body
        body = json::object();
      }
      if (!body.is_object()) return server_error();
      if (path == "/queue") {
        if (body.value("clear", false)) pending.clear();
        if (body.contains("delete"))
          for (const auto& id : body["delete"])
            pending.erase(std::remove_if(pending.begin(), pending.end(),
                                         [&](const json& item) { return item[1] == id; }),
                          pending.end());
      } else if (path == "/free") {
        last_free = body;
      } else if (path == "/interrupt") {
        std::string target = body.contains("prompt_id") && body["prompt_id"].is_string()
                                 ? body["prompt_id"].get<std::string>()
                                 : "";
        if (!running.empty() && (target.empty() || running[0][1] == target)) {
          ++interrupts;
          std::string id = running[0][1];
          history[id] = {{"prompt", running[0]}, {"outputs", json::object()},
                         {"status", {{"status_str", "error"}, {"completed", false},
                                     {"messages", {{"execution_interrupted", {{"prompt_id", id}}}}}}},
                         {"meta", json::object()}};
          running = json::array();
        }
      } else if (path == "/history") {
        if (body.value("clear", false)) history = json::object();
        if (body.contains("delete"))
          for (const auto& id : body["delete"]) history.erase(id.get<std::string>());
      }
      return empty_reply();
    }
    static const std::vector<std::string> known = {"/system_stats", "/prompt", "/queue", "/free",
                                                   "/history", "/object_info"};
    if (std::find(known.begin(), known.end(), path) != known.end() && m != "GET" && m != "POST")
      return text_reply(405, "405: Method Not Allowed");
    return text_reply(404, "404: Not Found");
  }
};

ComfyFake::ComfyFake() : m_impl(std::make_unique<Impl>()) {}
ComfyFake::~ComfyFake() { m_impl->server.stop(); }
core::Status ComfyFake::start(int port) { return m_impl->server.start("127.0.0.1", port); }
std::string ComfyFake::url() const { return m_impl->server.url(); }
int ComfyFake::port() const { return m_impl->server.port(); }

void ComfyFake::set_running(const std::string& prompt_id, const json& prompt) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->running = json::array({json::array({0, prompt_id, prompt, {{"client_id", "autopod"}}, json::array()})});
}

void ComfyFake::add_pending(const std::string& prompt_id, double number, const json& prompt) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->pending.push_back(json::array({number, prompt_id, prompt, json::object(), json::array()}));
}

void ComfyFake::add_history(const std::string& prompt_id, const json& entry) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->history[prompt_id] = entry;
}

void ComfyFake::refuse_first(int requests) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->refuse = requests;
}

void ComfyFake::delay_answers(std::chrono::milliseconds delay) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->delay = delay;
}

json ComfyFake::last_free() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->last_free;
}

int ComfyFake::interrupts() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->interrupts;
}

bool ComfyFake::saw_origin_header() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->saw_origin;
}

}  // namespace autopod::sandbox
