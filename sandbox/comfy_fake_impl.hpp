#pragma once
// Internal to sandbox/: the ComfyUI fake's state and its parts, one file each: comfy_fake.cpp
// (set-up, the WebSocket side and the test API), comfy_fake_validate.cpp (POST /prompt),
// comfy_fake_execute.cpp (the worker that runs prompts), comfy_fake_http.cpp (the other routes),
// comfy_fake_data.cpp (recorded bodies and the node catalogue).

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/fs.hpp"
#include "core/random.hpp"
#include "core/url.hpp"
#include "sandbox/comfy_fake.hpp"
#include "sandbox/http_server.hpp"

namespace autopod::sandbox {
namespace comfy_fake {

using nlohmann::json;
namespace fs = std::filesystem;

// Recorded from ComfyUI 0.3.64 (comfy_fake_data.cpp).
extern const json k_system_stats;
extern const json k_catalog;
extern const std::string k_png;
extern const json k_canny_traceback;

inline HttpReply json_reply(const json& body, int status = 200) {
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "application/json; charset=utf-8";
  r.body = body.dump();
  return r;
}

inline HttpReply empty_reply(int status = 200) {
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "application/octet-stream";
  return r;
}

inline HttpReply text_reply(int status, const std::string& text) {
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "text/plain; charset=utf-8";
  r.body = text;
  return r;
}

// aiohttp's answer when a handler raises (e.g. on malformed JSON).
inline HttpReply server_error() {
  return text_reply(500, "500 Internal Server Error\n\nServer got itself in trouble");
}

inline bool is_loopback_host(const std::string& host) {
  std::string name =
      host.substr(0, host.rfind(':') == std::string::npos ? host.size() : host.rfind(':'));
  return name.rfind("127.", 0) == 0 || name == "localhost" || name == "[::1]";
}

inline long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using core::random_hex;

// A 4-byte big-endian number, as ComfyUI's binary frames carry their type and lengths.
inline std::string be32(std::uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

inline std::string uuid4() {
  std::string h = random_hex(32);
  h[12] = '4';
  h[16] = "89ab"[h[16] % 4];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

inline std::map<std::string, std::string> parse_query(const std::string& target) {
  auto at = target.find('?');
  return at == std::string::npos ? std::map<std::string, std::string>{} : core::parse_query(target.substr(at + 1));
}

// `child` resolved stays inside `root` (os.path.commonpath on absolute paths, as the server does).
inline bool inside(const fs::path& root, const fs::path& child) {
  auto r = fs::weakly_canonical(root), c = fs::weakly_canonical(child);
  auto [a, b] = std::mismatch(r.begin(), r.end(), c.begin(), c.end());
  return a == r.end();
}

struct Part {
  std::string name, filename, body;
  bool has_filename = false;
};

// multipart/form-data parts; nullopt when the body is not multipart.
inline std::optional<std::vector<Part>> parse_multipart(const std::string& content_type,
                                                        const std::string& body) {
  auto b = content_type.find("boundary=");
  if (content_type.find("multipart/form-data") == std::string::npos || b == std::string::npos)
    return std::nullopt;
  std::string boundary = content_type.substr(b + 9);
  if (!boundary.empty() && boundary.front() == '"')
    boundary = boundary.substr(1, boundary.find('"', 1) - 1);
  std::string delim = "--" + boundary;
  std::vector<Part> parts;
  std::size_t pos = body.find(delim);
  if (pos == std::string::npos)
    return std::nullopt;
  for (;;) {
    pos += delim.size();
    if (body.compare(pos, 2, "--") == 0)
      break;
    pos = body.find("\r\n", pos);
    if (pos == std::string::npos)
      return std::nullopt;
    pos += 2;
    auto header_end = body.find("\r\n\r\n", pos);
    if (header_end == std::string::npos)
      return std::nullopt;
    std::string headers = body.substr(pos, header_end - pos);
    auto next = body.find("\r\n" + delim, header_end + 4);
    if (next == std::string::npos)
      return std::nullopt;
    Part p;
    p.body = body.substr(header_end + 4, next - header_end - 4);
    auto field = [&](const std::string& key) -> std::optional<std::string> {
      auto k = headers.find(key + "=\"");
      if (k == std::string::npos)
        return std::nullopt;
      auto start = k + key.size() + 2;
      return headers.substr(start, headers.find('"', start) - start);
    };
    p.name = field("name").value_or("");
    if (auto f = field("filename")) {
      p.filename = *f;
      p.has_filename = true;
    }
    parts.push_back(std::move(p));
    pos = next + 2;
  }
  return parts;
}

inline bool is_link(const json& v) {
  return v.is_array();
}

// The source node id of a link; the server accepts ids sent as numbers too.
inline std::string link_source(const json& link) {
  return link[0].is_string() ? link[0].get<std::string>() : link[0].dump();
}

}  // namespace comfy_fake

struct ComfyFake::Impl {
  using json = nlohmann::json;

  struct Socket {
    std::string sid;
    bool flags_negotiated = false;  // supports_preview_metadata
    bool first_object_seen = false;
  };

  mutable std::mutex mutex;
  std::condition_variable cv;
  std::filesystem::path base;
  json running = json::array();
  std::vector<json> pending;  // kept in insertion order: the server's heap is not sorted either
  json history = json::object();
  std::vector<std::string> history_order;  // completion order; a reused id keeps its first place
  json last_free;
  int interrupts = 0;
  int refuse = 0;
  bool saw_origin = false;
  int ws_refusal = 0;  // answer WebSocket upgrades with this status (0: accept)
  std::string address = "127.0.0.1";
  std::chrono::milliseconds delay{0};
  std::chrono::milliseconds step_delay{0};
  bool previews = false, hold = false, success_first = false, escaping_names = false;
  std::string drop_before;
  int counter = 0;       // the prompt number counter
  int file_counter = 0;  // SaveImage's 5-digit counter
  bool interrupt_flag = false;
  bool abandon = false;  // the running prompt dies with a restart
  bool manual_running = false;
  int interrupt_step = 0;      // set_running's prompt is not executed by the worker
  std::string executing_node;  // for the reconnect frame
  std::vector<json> submitted;
  int ws_connections = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> success_times;
  std::function<void(const std::string&, const json&)> event_sent;
  // Node output cache: node id -> the key its inputs made, and an output node's UI dict.
  std::map<std::string, std::string> cache_keys;
  std::map<std::string, json> ui_cache;
  // The server's sid table holds one socket per sid; every socket knows its own sid.
  std::map<std::string, std::shared_ptr<WsSession>> sids;
  std::map<WsSession*, Socket> sockets;
  bool stopping = false;
  std::thread worker;
  std::unique_ptr<HttpServer> server;
  int port = 0;

  int queue_remaining() const { return static_cast<int>(running.size() + pending.size()); }

  Impl();
  ~Impl();
  std::unique_ptr<HttpServer> make_server();
  void store_history(const std::string& id, const json& entry);
  void broadcast_text(const std::string& text);
  void broadcast_status();
  // Per-prompt event to the submitting socket only, or (`spray`) to every socket without a cid.
  void send_event(const std::string& cid,
                  const std::string& type,
                  const json& data,
                  bool spray = false);
  // Around each `progress`: type 4 before it for a socket that negotiated the flag, type 1 after
  // it otherwise (and to every socket when the prompt has no client id).
  void send_preview(const std::string& cid,
                    const std::string& prompt_id,
                    const std::string& node,
                    bool before_progress);
  void send_text_frame(const std::string& node, const std::string& text);
  json catalog() const;
  static json error(const std::string& type,
                    const std::string& message,
                    const std::string& details,
                    json extra = json::object());
  // Validates node `id` and what it links to; own errors land in `errors[id]`.
  bool validate_node(const json& prompt,
                     const json& cat,
                     const std::string& id,
                     std::map<std::string, bool>& done,
                     std::map<std::string, json>& errors);
  // POST /prompt, as execution.py validates it.
  HttpReply submit(const std::string& text);
  void work();
  // Waits `d` without the lock; false when interrupted or stopping.
  bool pause(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds d);
  std::string cache_key(const json& prompt,
                        const std::string& id,
                        std::map<std::string, std::string>& memo);
  void order_from(const json& prompt,
                  const std::string& id,
                  std::set<std::string>& seen,
                  std::vector<std::string>& order);
  json file_ref(const std::string& name,
                const std::string& subfolder,
                const std::string& type) const;
  json save_images(const json& node, bool temp);
  void execute(const json& item, std::unique_lock<std::mutex>& lock);
  void finish(const json& item,
              const std::string& status,
              const json& messages,
              const json& outputs,
              const json& meta,
              const std::string& end_type,
              const json& end_data,
              bool spray,
              std::unique_lock<std::mutex>& lock);
  // The CSRF guard: Host and Origin both present, Host on loopback, host[:port] differ -> 403.
  std::optional<HttpReply> origin_check(const HttpExchange& ex);
  HttpReply handle(const HttpExchange& ex);
  HttpReply view(const std::map<std::string, std::string>& q);
  HttpReply upload(const HttpExchange& ex);
  HttpReply route(const HttpExchange& ex);
};

}  // namespace autopod::sandbox
