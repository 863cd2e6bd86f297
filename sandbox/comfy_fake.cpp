#include "sandbox/comfy_fake.hpp"

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "core/fs.hpp"
#include "core/random.hpp"
#include "sandbox/http_server.hpp"

namespace autopod::sandbox {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

HttpReply json_reply(const json& body, int status = 200) {
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "application/json; charset=utf-8";
  r.body = body.dump();
  return r;
}

HttpReply empty_reply(int status = 200) {
  HttpReply r;
  r.status = status;
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

// Node schemas as /object_info gives them (EmptyImage and LoadImage as recorded; the others
// follow ComfyUI's nodes.py). LoadImage's option list is filled in from the input directory.
const json k_catalog = json::parse(R"json({
  "EmptyImage": {"input": {"required": {
      "width": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
      "height": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
      "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}],
      "color": ["INT", {"default": 0, "min": 0, "max": 16777215, "step": 1, "display": "color"}]}},
    "input_order": {"required": ["width", "height", "batch_size", "color"]},
    "output": ["IMAGE"], "output_is_list": [false], "output_name": ["IMAGE"], "name": "EmptyImage",
    "display_name": "EmptyImage", "description": "", "python_module": "nodes", "category": "image",
    "output_node": false},
  "LoadImage": {"input": {"required": {"image": [[], {"image_upload": true}]}},
    "input_order": {"required": ["image"]}, "output": ["IMAGE", "MASK"],
    "output_is_list": [false, false], "output_name": ["IMAGE", "MASK"], "name": "LoadImage",
    "display_name": "Load Image", "description": "", "python_module": "nodes", "category": "image",
    "output_node": false},
  "ImageInvert": {"input": {"required": {"image": ["IMAGE"]}}, "input_order": {"required": ["image"]},
    "output": ["IMAGE"], "output_is_list": [false], "output_name": ["IMAGE"], "name": "ImageInvert",
    "display_name": "Invert Image", "description": "", "python_module": "nodes",
    "category": "image", "output_node": false},
  "SaveImage": {"input": {"required": {"images": ["IMAGE", {"tooltip": "The images to save."}],
      "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
      "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}},
    "input_order": {"required": ["images", "filename_prefix"], "hidden": ["prompt", "extra_pnginfo"]},
    "output": [], "output_is_list": [], "output_name": [], "name": "SaveImage",
    "display_name": "Save Image", "description": "Saves the input images to your ComfyUI output directory.",
    "python_module": "nodes", "category": "image", "output_node": true},
  "PreviewImage": {"input": {"required": {"images": ["IMAGE"]},
      "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}},
    "input_order": {"required": ["images"], "hidden": ["prompt", "extra_pnginfo"]},
    "output": [], "output_is_list": [], "output_name": [], "name": "PreviewImage",
    "display_name": "Preview Image", "description": "Saves the input images to your ComfyUI output directory.",
    "python_module": "nodes", "category": "image", "output_node": true},
  "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["sd_xl_base_1.0.safetensors",
      "v1-5-pruned-emaonly.safetensors"], {"tooltip": "The name of the checkpoint (model) to load."}]}},
    "input_order": {"required": ["ckpt_name"]}, "output": ["MODEL", "CLIP", "VAE"],
    "output_is_list": [false, false, false], "output_name": ["MODEL", "CLIP", "VAE"],
    "name": "CheckpointLoaderSimple", "display_name": "Load Checkpoint", "description": "",
    "python_module": "nodes", "category": "loaders", "output_node": false},
  "CLIPTextEncode": {"input": {"required": {"text": ["STRING", {"multiline": true, "dynamicPrompts": true}],
      "clip": ["CLIP"]}}, "input_order": {"required": ["text", "clip"]}, "output": ["CONDITIONING"],
    "output_is_list": [false], "output_name": ["CONDITIONING"], "name": "CLIPTextEncode",
    "display_name": "CLIP Text Encode (Prompt)", "description": "", "python_module": "nodes",
    "category": "conditioning", "output_node": false},
  "EmptyLatentImage": {"input": {"required": {
      "width": ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}],
      "height": ["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}],
      "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}]}},
    "input_order": {"required": ["width", "height", "batch_size"]}, "output": ["LATENT"],
    "output_is_list": [false], "output_name": ["LATENT"], "name": "EmptyLatentImage",
    "display_name": "Empty Latent Image", "description": "", "python_module": "nodes",
    "category": "latent", "output_node": false},
  "KSampler": {"input": {"required": {"model": ["MODEL"],
      "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": true}],
      "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
      "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
      "sampler_name": [["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2m_sde"], {}],
      "scheduler": [["normal", "karras", "exponential", "simple"], {}],
      "positive": ["CONDITIONING"], "negative": ["CONDITIONING"], "latent_image": ["LATENT"],
      "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]}},
    "input_order": {"required": ["model", "seed", "steps", "cfg", "sampler_name", "scheduler",
      "positive", "negative", "latent_image", "denoise"]}, "output": ["LATENT"],
    "output_is_list": [false], "output_name": ["LATENT"], "name": "KSampler",
    "display_name": "KSampler", "description": "", "python_module": "nodes",
    "category": "sampling", "output_node": false},
  "VAEDecode": {"input": {"required": {"samples": ["LATENT"], "vae": ["VAE"]}},
    "input_order": {"required": ["samples", "vae"]}, "output": ["IMAGE"], "output_is_list": [false],
    "output_name": ["IMAGE"], "name": "VAEDecode", "display_name": "VAE Decode", "description": "",
    "python_module": "nodes", "category": "latent", "output_node": false},
  "Canny": {"input": {"required": {"image": ["IMAGE", {}],
      "low_threshold": ["FLOAT", {"default": 0.4, "min": 0.01, "max": 0.99, "step": 0.01}],
      "high_threshold": ["FLOAT", {"default": 0.8, "min": 0.01, "max": 0.99, "step": 0.01}]}},
    "input_order": {"required": ["image", "low_threshold", "high_threshold"]}, "output": ["IMAGE"],
    "output_is_list": [false], "output_name": ["IMAGE"], "name": "Canny", "display_name": "Canny",
    "description": "", "python_module": "comfy_extras.nodes_canny", "category": "image/preprocessors",
    "output_node": false},
  "GetImageSize": {"input": {"required": {"image": ["IMAGE", {}]}, "hidden": {"unique_id": "UNIQUE_ID"}},
    "input_order": {"required": ["image"], "hidden": ["unique_id"]}, "output": ["INT", "INT", "INT"],
    "output_is_list": [false, false, false], "output_name": ["width", "height", "batch_size"],
    "name": "GetImageSize", "display_name": "Get Image Size", "description": "",
    "python_module": "comfy_extras.nodes_images", "category": "image", "output_node": false},
  "PreviewAny": {"input": {"required": {"source": ["*", {}]}}, "input_order": {"required": ["source"]},
    "output": [], "output_is_list": [], "output_name": [], "name": "PreviewAny",
    "display_name": "Preview Any", "description": "", "python_module": "comfy_extras.nodes_preview_any",
    "category": "utils", "output_node": true}
})json");

// An 8x8 RGB PNG, as small as a real one gets.
const std::string k_png(
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x08\x00\x00"
    "\x00\x08\x08\x02\x00\x00\x00\x4b\x6d\x29\xdc\x00\x00\x00\x11\x49\x44\x41\x54\x78\xda\x63"
    "\xd8\xc9\x7c\x1e\x2b\x62\x18\x5a\x12\x00\x90\x82\x62\xc1\x57\x43\xf3\x06\x00\x00\x00\x00"
    "\x49\x45\x4e\x44\xae\x42\x60\x82",
    74);

// The traceback ComfyUI 0.3.64 sent for a failing Canny node (shortened to its outer frames).
const json k_canny_traceback = json::array(
    {"  File \"/opt/comfyui-src/execution.py\", line 496, in execute\n    output_data, output_ui, "
     "has_subgraph, has_pending_tasks = await get_output_data(prompt_id, unique_id, obj, "
     "input_data_all, execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
     "hidden_inputs=hidden_inputs)\n",
     "  File \"/opt/comfyui-src/comfy_extras/nodes_canny.py\", line 29, in execute\n    output = "
     "canny(image.to(comfy.model_management.get_torch_device()).movedim(-1, 1), low_threshold, "
     "high_threshold)\n",
     "  File \"stubs/_comfystub/__init__.py\", line 13, in _f\n    raise StubUnavailable(f\"{qualname} "
     "is a stub: the real package is not installed\")\n"});

bool is_loopback_host(const std::string& host) {
  std::string name = host.substr(0, host.rfind(':') == std::string::npos ? host.size() : host.rfind(':'));
  return name.rfind("127.", 0) == 0 || name == "localhost" || name == "[::1]";
}

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using core::random_hex;

// A 4-byte big-endian number, as ComfyUI's binary frames carry their type and lengths.
std::string be32(std::uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
}

std::string uuid4() {
  std::string h = random_hex(32);
  h[12] = '4';
  h[16] = "89ab"[h[16] % 4];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(const std::string& target) {
  std::map<std::string, std::string> q;
  auto at = target.find('?');
  if (at == std::string::npos) return q;
  std::stringstream ss(target.substr(at + 1));
  std::string pair;
  while (std::getline(ss, pair, '&')) {
    auto eq = pair.find('=');
    q[url_decode(pair.substr(0, eq))] = eq == std::string::npos ? "" : url_decode(pair.substr(eq + 1));
  }
  return q;
}

// `child` resolved stays inside `root` (os.path.commonpath on absolute paths, as the server does).
bool inside(const fs::path& root, const fs::path& child) {
  auto r = fs::weakly_canonical(root), c = fs::weakly_canonical(child);
  auto [a, b] = std::mismatch(r.begin(), r.end(), c.begin(), c.end());
  return a == r.end();
}

struct Part {
  std::string name, filename, body;
  bool has_filename = false;
};

// multipart/form-data parts; nullopt when the body is not multipart.
std::optional<std::vector<Part>> parse_multipart(const std::string& content_type, const std::string& body) {
  auto b = content_type.find("boundary=");
  if (content_type.find("multipart/form-data") == std::string::npos || b == std::string::npos)
    return std::nullopt;
  std::string boundary = content_type.substr(b + 9);
  if (!boundary.empty() && boundary.front() == '"') boundary = boundary.substr(1, boundary.find('"', 1) - 1);
  std::string delim = "--" + boundary;
  std::vector<Part> parts;
  std::size_t pos = body.find(delim);
  if (pos == std::string::npos) return std::nullopt;
  for (;;) {
    pos += delim.size();
    if (body.compare(pos, 2, "--") == 0) break;
    pos = body.find("\r\n", pos);
    if (pos == std::string::npos) return std::nullopt;
    pos += 2;
    auto header_end = body.find("\r\n\r\n", pos);
    if (header_end == std::string::npos) return std::nullopt;
    std::string headers = body.substr(pos, header_end - pos);
    auto next = body.find("\r\n" + delim, header_end + 4);
    if (next == std::string::npos) return std::nullopt;
    Part p;
    p.body = body.substr(header_end + 4, next - header_end - 4);
    auto field = [&](const std::string& key) -> std::optional<std::string> {
      auto k = headers.find(key + "=\"");
      if (k == std::string::npos) return std::nullopt;
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

bool is_link(const json& v) { return v.is_array(); }

// The source node id of a link; the server accepts ids sent as numbers too.
std::string link_source(const json& link) {
  return link[0].is_string() ? link[0].get<std::string>() : link[0].dump();
}

}  // namespace

struct ComfyFake::Impl {
  struct Socket {
    std::string sid;
    bool flags_negotiated = false;  // supports_preview_metadata
    bool first_object_seen = false;
  };

  mutable std::mutex mutex;
  std::condition_variable cv;
  fs::path base;
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
  int counter = 0;             // the prompt number counter
  int file_counter = 0;        // SaveImage's 5-digit counter
  bool interrupt_flag = false;
  bool abandon = false;        // the running prompt dies with a restart
  bool manual_running = false;
  int interrupt_step = 0; // set_running's prompt is not executed by the worker
  std::string executing_node;  // for the reconnect frame
  std::vector<json> submitted;
  int ws_connections = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> success_times;
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

  Impl() {
    char tmpl[] = "/tmp/autopod-comfy-XXXXXX";
    base = ::mkdtemp(tmpl);
    for (const char* d : {"input", "output", "temp"}) fs::create_directories(base / d);
    worker = std::thread([this] { work(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
      cv.notify_all();
    }
    worker.join();
    if (server) server->stop();
    std::error_code ec;
    fs::remove_all(base, ec);
  }

  std::unique_ptr<HttpServer> make_server() {
    WsHandlers ws;
    ws.accept = [this](const HttpExchange& ex) -> std::optional<HttpReply> {
      std::lock_guard lock(mutex);
      std::string path = ex.path.rfind("/api/", 0) == 0 ? ex.path.substr(4) : ex.path;
      if (path != "/ws") return text_reply(404, "404: Not Found");
      if (auto refused = origin_check(ex)) return refused;
      // As the origin check (an empty 403), an authenticating proxy (401/407) or another server
      // (404) would answer.
      if (ws_refusal == 403) return empty_reply(403);
      if (ws_refusal != 0) return text_reply(ws_refusal, std::to_string(ws_refusal) + ": refused");
      return std::nullopt;
    };
    ws.on_open = [this](const HttpExchange& ex, const std::shared_ptr<WsSession>& s) {
      std::lock_guard lock(mutex);
      ++ws_connections;
      auto q = parse_query(ex.target);
      std::string sid = q.count("clientId") && !q["clientId"].empty() ? q["clientId"] : random_hex(32);
      sids[sid] = s;  // replaces an older socket with this id: that one hears nothing from now on
      sockets[s.get()] = Socket{sid};
      s->send_text(json{{"type", "status"},
                        {"data", {{"status", {{"exec_info", {{"queue_remaining", queue_remaining()}}}}},
                                  {"sid", sid}}}}
                       .dump());
      if (!running.empty() && running[0][3].value("client_id", "") == sid && !executing_node.empty())
        s->send_text(json{{"type", "executing"}, {"data", {{"node", executing_node}}}}.dump());
    };
    ws.on_message = [this](WsSession& s, const std::string& data, bool binary) {
      std::lock_guard lock(mutex);
      auto& sock = sockets[&s];
      if (binary || sock.first_object_seen) return;
      json msg = json::parse(data, nullptr, false);
      if (msg.is_discarded() || !msg.is_object()) return;  // does not use up the slot
      sock.first_object_seen = true;
      if (msg.value("type", "") != "feature_flags" || !msg.contains("data") || !msg["data"].is_object())
        return;
      sock.flags_negotiated = msg["data"].value("supports_preview_metadata", false);
      s.send_text(json{{"type", "feature_flags"},
                       {"data", {{"supports_preview_metadata", true}, {"max_upload_size", 104857600}}}}
                      .dump());
    };
    ws.on_close = [this](WsSession& s) {
      std::lock_guard lock(mutex);
      auto it = sockets.find(&s);
      if (it == sockets.end()) return;
      // The real handler removes the table entry for its sid, even when a newer socket owns it.
      sids.erase(it->second.sid);
      sockets.erase(it);
    };
    return std::make_unique<HttpServer>([this](const HttpExchange& ex) { return handle(ex); }, ws);
  }

  void store_history(const std::string& id, const json& entry) {
    if (!history.contains(id)) history_order.push_back(id);
    history[id] = entry;
  }

  int queue_remaining() const { return static_cast<int>(running.size() + pending.size()); }

  // --- sending -------------------------------------------------------------------------------

  void broadcast_text(const std::string& text) {
    for (auto& [sid, s] : sids) s->send_text(text);
  }

  void broadcast_status() {
    broadcast_text(json{{"type", "status"},
                        {"data", {{"status", {{"exec_info", {{"queue_remaining", queue_remaining()}}}}}}}}
                       .dump());
  }

  // Per-prompt event to the submitting socket only, or (`spray`) to every socket without a cid.
  void send_event(const std::string& cid, const std::string& type, const json& data, bool spray = false) {
    if (!drop_before.empty() && drop_before == type && !cid.empty()) {
      drop_before.clear();
      if (auto it = sids.find(cid); it != sids.end()) it->second->drop();
    }
    std::string text = json{{"type", type}, {"data", data}}.dump();
    if (cid.empty()) {
      if (spray) broadcast_text(text);
      return;
    }
    if (auto it = sids.find(cid); it != sids.end()) it->second->send_text(text);
  }

  // Around each `progress`: type 4 before it for a socket that negotiated the flag, type 1 after
  // it otherwise (and to every socket when the prompt has no client id).
  void send_preview(const std::string& cid, const std::string& prompt_id, const std::string& node,
                    bool before_progress) {
    if (cid.empty()) {  // without a cid every socket gets type 1
      if (!before_progress)
        for (auto& [sid, s] : sids) s->send_binary(be32(1) + be32(2) + k_png);
      return;
    }
    auto it = sids.find(cid);
    if (it == sids.end()) return;
    bool flagged = sockets[it->second.get()].flags_negotiated;
    if (flagged != before_progress) return;
    if (flagged) {
      std::string meta = json{{"node_id", node}, {"prompt_id", prompt_id}, {"display_node_id", node},
                              {"parent_node_id", nullptr}, {"real_node_id", node},
                              {"image_type", "image/png"}}
                             .dump();
      it->second->send_binary(be32(4) + be32(static_cast<std::uint32_t>(meta.size())) + meta + k_png);
    } else {
      it->second->send_binary(be32(1) + be32(2) + k_png);
    }
  }

  void send_text_frame(const std::string& node, const std::string& text) {
    std::string frame = be32(3) + be32(static_cast<std::uint32_t>(node.size())) + node + text;
    for (auto& [sid, s] : sids) s->send_binary(frame);
  }

  // --- validation ----------------------------------------------------------------------------

  json catalog() const {
    json c = k_catalog;
    json files = json::array();
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(base / "input"))
      if (e.is_regular_file()) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (const auto& n : names) files.push_back(n);
    c["LoadImage"]["input"]["required"]["image"][0] = files;
    return c;
  }

  static json error(const std::string& type, const std::string& message, const std::string& details,
                    json extra = json::object()) {
    return {{"type", type}, {"message", message}, {"details", details}, {"extra_info", std::move(extra)}};
  }

  // Validates node `id` and what it links to; own errors land in `errors[id]`.
  bool validate_node(const json& prompt, const json& cat, const std::string& id,
                     std::map<std::string, bool>& done, std::map<std::string, json>& errors) {
    if (auto d = done.find(id); d != done.end()) return d->second;
    done[id] = true;
    const json& node = prompt[id];
    const json& info = cat[node["class_type"].get<std::string>()];
    json inputs = node.value("inputs", json::object());
    json own = json::array();
    bool upstream_ok = true;
    for (const auto& [name, spec] : info["input"]["required"].items()) {
      if (!inputs.contains(name)) {
        own.push_back(error("required_input_missing", "Required input is missing", name,
                            {{"input_name", name}}));
        continue;
      }
      const json& v = inputs[name];
      if (is_link(v)) {
        if (v.size() != 2) {
          own.push_back(error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                              name, {{"input_name", name}, {"input_config", spec}, {"received_value", v}}));
          continue;
        }
        std::string src = link_source(v);
        if (!prompt.contains(src)) {
          own.push_back(error("exception_during_validation", "Exception when validating node",
                              "'" + src + "'", {{"exception_type", "KeyError"}, {"traceback", json::array()}}));
          continue;
        }
        if (!validate_node(prompt, cat, src, done, errors)) upstream_ok = false;
        continue;
      }
      const json& type = spec[0];
      json opts = spec.size() > 1 ? spec[1] : json::object();
      if (type.is_array()) {
        if (node["class_type"] == "LoadImage" && name == "image") {
          if (!v.is_string() || !fs::is_regular_file(base / "input" / v.get<std::string>()))
            own.push_back(error("custom_validation_failed", "Custom validation failed for node",
                                name + " - Invalid image file: " + (v.is_string() ? v.get<std::string>() : v.dump()),
                                {{"input_name", name}}));
        } else if (std::find(type.begin(), type.end(), v) == type.end()) {
          own.push_back(error("value_not_in_list", "Value not in list",
                              name + ": '" + (v.is_string() ? v.get<std::string>() : v.dump()) +
                                  "' not in " + type.dump(),
                              {{"input_name", name}, {"input_config", spec}, {"received_value", v}}));
        }
      } else if (type == "INT" || type == "FLOAT") {
        if (!v.is_number()) {
          own.push_back(error("invalid_input_type", "Failed to convert an input value to a " +
                                                       type.get<std::string>() + " value",
                              name + ", " + v.dump(), {{"input_name", name}, {"input_config", spec},
                                                       {"received_value", v}}));
        } else if (opts.contains("min") && v.get<double>() < opts["min"].get<double>()) {
          own.push_back(error("value_smaller_than_min",
                              "Value " + v.dump() + " smaller than min of " + opts["min"].dump(), name,
                              {{"input_name", name}, {"input_config", spec}, {"received_value", v}}));
        } else if (opts.contains("max") &&
                   (opts["max"].is_number_unsigned() && v.is_number_unsigned()
                        ? v.get<std::uint64_t>() > opts["max"].get<std::uint64_t>()
                        : v.get<double>() > opts["max"].get<double>())) {
          own.push_back(error("value_bigger_than_max",
                              "Value " + v.dump() + " bigger than max of " + opts["max"].dump(), name,
                              {{"input_name", name}, {"input_config", spec}, {"received_value", v}}));
        }
      }
    }
    if (!own.empty()) errors[id] = own;
    bool ok = own.empty() && upstream_ok;
    done[id] = ok;
    return ok;
  }

  // POST /prompt, as execution.py validates it.
  HttpReply submit(const std::string& text) {
    json body = json::parse(text, nullptr, false);
    if (body.is_discarded()) return server_error();
    ++counter;  // every body that parses takes a number, rejected or not
    int number = counter - 1;
    auto reject = [](const json& err, json node_errors = json::object()) {
      return json_reply({{"error", err}, {"node_errors", std::move(node_errors)}}, 400);
    };
    if (!body.is_object() || !body.contains("prompt"))
      return reject(error("no_prompt", "No prompt provided", "No prompt provided"));
    json prompt = body["prompt"];
    json cat = catalog();
    if (!prompt.is_object()) return server_error();
    for (const auto& [id, node] : prompt.items()) {
      if (!node.is_object() || !node.contains("class_type"))
        return reject(error("invalid_prompt",
                            "Cannot execute because a node is missing the class_type property.",
                            "Node ID '#" + id + "'"));
      std::string cls = node["class_type"].is_string() ? node["class_type"].get<std::string>() : node["class_type"].dump();
      if (!cat.contains(cls))
        return reject(error("invalid_prompt", "Cannot execute because node " + cls + " does not exist.",
                            "Node ID '#" + id + "'"));
    }
    std::vector<std::string> outputs;
    for (const auto& [id, node] : prompt.items())
      if (cat[node["class_type"].get<std::string>()].value("output_node", false)) outputs.push_back(id);
    if (outputs.empty()) return reject(error("prompt_no_outputs", "Prompt has no outputs", ""));
    std::map<std::string, json> errors;
    std::map<std::string, std::vector<std::string>> dependents;
    json good = json::array();
    std::string details;
    for (const auto& out : outputs) {
      std::map<std::string, bool> done;
      std::map<std::string, json> errs;
      bool ok = validate_node(prompt, cat, out, done, errs);
      for (auto& [id, e] : errs) {
        errors[id] = e;
        dependents[id].push_back(out);
      }
      if (ok) good.push_back(out);
      else if (errs.count(out))
        for (const auto& e : errs[out]) {
          details += (details.empty() ? "" : "\n") + e["message"].get<std::string>() + ": " +
                     e["details"].get<std::string>();
        }
    }
    json node_errors = json::object();
    for (auto& [id, e] : errors)
      node_errors[id] = {{"errors", e}, {"dependent_outputs", dependents[id]},
                         {"class_type", prompt[id]["class_type"]}};
    if (good.empty())
      return reject(error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
                    node_errors);
    std::string id = body.contains("prompt_id")
                         ? (body["prompt_id"].is_string() ? body["prompt_id"].get<std::string>()
                                                          : body["prompt_id"].dump())
                         : uuid4();
    json extra = body.value("extra_data", json::object());
    if (body.contains("client_id")) extra["client_id"] = body["client_id"];
    json n = body.contains("number") ? json(body["number"].get<double>()) : json(number);
    pending.push_back(json::array({n, id, prompt, extra, good}));
    submitted.push_back(body);
    broadcast_status();
    cv.notify_all();
    return json_reply({{"prompt_id", id}, {"number", n}, {"node_errors", node_errors}});
  }

  // --- execution -----------------------------------------------------------------------------

  void work() {
    std::unique_lock lock(mutex);
    for (;;) {
      cv.wait(lock, [&] { return stopping || (!hold && !pending.empty()); });
      if (stopping) return;
      auto next = std::min_element(pending.begin(), pending.end(), [](const json& a, const json& b) {
        return a[0].get<double>() < b[0].get<double>();
      });
      json item = *next;
      pending.erase(next);
      running = json::array({item});
      interrupt_flag = false;  // an interrupt sent while idle is cleared when a prompt starts
      broadcast_status();
      execute(item, lock);
      executing_node.clear();
    }
  }

  // Waits `d` without the lock; false when interrupted or stopping.
  bool pause(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds d) {
    if (d.count() > 0) cv.wait_for(lock, d, [&] { return stopping || interrupt_flag; });
    return !stopping && !interrupt_flag;
  }

  std::string cache_key(const json& prompt, const std::string& id, std::map<std::string, std::string>& memo) {
    if (auto it = memo.find(id); it != memo.end()) return it->second;
    std::string key = prompt[id]["class_type"].get<std::string>() + "(";
    const json inputs = prompt[id].value("inputs", json::object());
    for (const auto& [name, v] : inputs.items()) {
      key += name + "=";
      key += is_link(v) ? "<" + cache_key(prompt, link_source(v), memo) + ">." + v[1].dump()
                        : v.dump();
      key += ",";
    }
    return memo[id] = key + ")";
  }

  void order_from(const json& prompt, const std::string& id, std::set<std::string>& seen,
                  std::vector<std::string>& order) {
    if (!seen.insert(id).second) return;
    const json inputs = prompt[id].value("inputs", json::object());
    for (const auto& [name, v] : inputs.items())
      if (is_link(v)) order_from(prompt, link_source(v), seen, order);
    order.push_back(id);
  }

  json file_ref(const std::string& name, const std::string& subfolder, const std::string& type) const {
    if (escaping_names) return {{"filename", "../../../" + name}, {"subfolder", "../../.."}, {"type", type}};
    return {{"filename", name}, {"subfolder", subfolder}, {"type", type}};
  }

  json save_images(const json& node, bool temp) {
    std::string prefix = temp ? "ComfyUI_temp_" + random_hex(5) : node["inputs"].value("filename_prefix", "ComfyUI");
    std::string subfolder, name = prefix;
    if (auto slash = prefix.rfind('/'); slash != std::string::npos) {
      subfolder = prefix.substr(0, slash);
      name = prefix.substr(slash + 1);
    }
    fs::path dir = base / (temp ? "temp" : "output") / subfolder;
    fs::create_directories(dir);
    char counter_text[16];
    std::snprintf(counter_text, sizeof counter_text, "%05d", ++file_counter);
    std::string file = name + "_" + counter_text + "_.png";
    std::ofstream(dir / file, std::ios::binary) << k_png;
    return {{"images", json::array({file_ref(file, subfolder, temp ? "temp" : "output")})}};
  }

  void execute(const json& item, std::unique_lock<std::mutex>& lock) {
    const std::string id = item[1];
    const json prompt = item[2];
    const std::string cid = item[3].value("client_id", "");
    json stamp = {{"prompt_id", id}, {"timestamp", now_ms()}};
    json messages = json::array({json::array({"execution_start", stamp})});
    send_event(cid, "execution_start", stamp);

    std::vector<std::string> order;
    std::set<std::string> seen;
    for (const auto& out : item[4]) order_from(prompt, out.get<std::string>(), seen, order);
    std::map<std::string, std::string> memo;
    std::set<std::string> cached;
    json cached_list = json::array();
    for (const auto& n : order)
      if (auto it = cache_keys.find(n); it != cache_keys.end() && it->second == cache_key(prompt, n, memo)) {
        cached.insert(n);
        cached_list.push_back(n);
      }
    json cached_msg = {{"nodes", cached_list}, {"prompt_id", id}, {"timestamp", now_ms()}};
    messages.push_back(json::array({"execution_cached", cached_msg}));
    send_event(cid, "execution_cached", cached_msg);

    json states = json::object(), outputs = json::object(), meta = json::object();
    json executed = json::array();
    auto state = [&](const std::string& n, json value, json max, const char* s) {
      states[n] = {{"value", value}, {"max", max}, {"state", s}, {"node_id", n}, {"prompt_id", id},
                   {"display_node_id", n}, {"parent_node_id", nullptr}, {"real_node_id", n}};
      send_event(cid, "progress_state", {{"prompt_id", id}, {"nodes", states}}, true);
    };
    auto ui_out = [&](const std::string& n, const json& ui) {
      send_event(cid, "executed", {{"node", n}, {"display_node", n}, {"output", ui}, {"prompt_id", id}});
      outputs[n] = ui;
      meta[n] = {{"node_id", n}, {"display_node", n}, {"parent_node", nullptr}, {"real_node_id", n}};
    };
    auto interrupted = [&](const std::string& n) {
      json data = {{"prompt_id", id}, {"node_id", n}, {"node_type", prompt[n]["class_type"]},
                   {"executed", executed}, {"timestamp", now_ms()}};
      messages.push_back(json::array({"execution_interrupted", data}));
      finish(item, "error", messages, outputs, meta, "execution_interrupted", data, true, lock);
    };

    for (const auto& n : order) {
      const json& node = prompt[n];
      const std::string cls = node["class_type"];
      bool output_node = k_catalog[cls].value("output_node", false);
      if (cached.count(n)) {
        if (output_node) {  // cached output nodes replay their old outputs
          ui_out(n, ui_cache[n]);
          state(n, 1, 1, "finished");
        }
        continue;
      }
      if (!pause(lock, std::chrono::milliseconds(0))) return interrupted(n);
      state(n, 0.0, 1.0, "running");
      executing_node = n;
      send_event(cid, "executing", {{"node", n}, {"display_node", n}, {"prompt_id", id}});
      json ui;
      if (cls == "KSampler") {
        int steps = node["inputs"].value("steps", 20);
        for (int v = 1; v <= steps; ++v) {
          if (interrupt_step == v) {
            interrupt_step = 0;
            ++interrupts;
            interrupt_flag = true;
          }
          if (!pause(lock, step_delay)) return interrupted(n);
          state(n, v, steps, "running");
          if (previews) send_preview(cid, id, n, true);
          send_event(cid, "progress", {{"value", v}, {"max", steps}, {"prompt_id", id}, {"node", n}}, true);
          if (previews) send_preview(cid, id, n, false);
        }
      } else if (cls == "Canny") {
        json data = {{"prompt_id", id}, {"node_id", n}, {"node_type", cls}, {"executed", executed},
                     {"exception_message", "kornia.filters.canny is a stub: the real package is not installed\n"},
                     {"exception_type", "_comfystub.StubUnavailable"}, {"traceback", k_canny_traceback},
                     {"current_inputs", {{"image", json::array({"tensor([[[[0.0000, 0.0000, 0.5490]]]])"})},
                                         {"low_threshold", json::array({"0.4"})},
                                         {"high_threshold", json::array({"0.8"})}}},
                     {"current_outputs", executed}, {"timestamp", now_ms()}};
        messages.push_back(json::array({"execution_error", data}));
        return finish(item, "error", messages, outputs, meta, "execution_error", data, false, lock);
      } else if (cls == "GetImageSize") {
        send_text_frame(n, "width: 8, height: 8\n batch size: 1");
      } else if (cls == "SaveImage" || cls == "PreviewImage") {
        ui = save_images(node, cls == "PreviewImage");
      } else if (cls == "PreviewAny") {
        ui = {{"text", json::array({"8"})}};
      }
      if (!ui.is_null()) {
        ui_out(n, ui);
        ui_cache[n] = ui;
      }
      state(n, 1.0, 1.0, "finished");
      cache_keys[n] = cache_key(prompt, n, memo);
      executed.push_back(n);
    }
    json data = {{"prompt_id", id}, {"timestamp", now_ms()}};
    messages.push_back(json::array({"execution_success", data}));
    finish(item, "success", messages, outputs, meta, "execution_success", data, false, lock);
  }

  void finish(const json& item, const std::string& status, const json& messages, const json& outputs,
              const json& meta, const std::string& end_type, const json& end_data, bool spray,
              std::unique_lock<std::mutex>& lock) {
    const std::string id = item[1];
    const std::string cid = item[3].value("client_id", "");
    if (abandon) {
      abandon = false;
      running = json::array();
      return;
    }
    json extra = item[3];
    extra.erase("api_key_comfy_org");
    extra.erase("auth_token_comfy_org");
    json entry = {{"prompt", json::array({item[0], id, item[2], extra, item[4]})},
                  {"outputs", outputs},
                  {"status", {{"status_str", status}, {"completed", status == "success"}, {"messages", messages}}},
                  {"meta", meta}};
    if (end_type == "execution_success") success_times[id] = std::chrono::steady_clock::now();
    if (success_first && end_type == "execution_success") {
      send_event(cid, end_type, end_data, spray);
      cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping; });
      store_history(id, entry);
    } else {
      store_history(id, entry);
      send_event(cid, end_type, end_data, spray);
    }
    running = json::array();
    executing_node.clear();
    broadcast_status();
    send_event(cid, "executing", {{"node", nullptr}, {"prompt_id", id}});
  }

  // --- HTTP ----------------------------------------------------------------------------------

  // The CSRF guard: Host and Origin both present, Host on loopback, host[:port] differ -> 403.
  std::optional<HttpReply> origin_check(const HttpExchange& ex) {
    auto origin = ex.headers.find("origin");
    if (origin == ex.headers.end()) return std::nullopt;
    saw_origin = true;
    auto host = ex.headers.count("host") ? ex.headers.at("host") : "";
    std::string o = origin->second;
    auto scheme = o.find("://");
    if (scheme != std::string::npos) o = o.substr(scheme + 3);
    if (o != "null" && !host.empty() && is_loopback_host(host) && o != host) return empty_reply(403);
    return std::nullopt;
  }

  HttpReply handle(const HttpExchange& ex) {
    std::lock_guard lock(mutex);
    HttpReply r = route(ex);
    if (delay.count() > 0) r.delay = delay;
    return r;
  }

  HttpReply view(const std::map<std::string, std::string>& q) {
    auto f = q.find("filename");
    if (f == q.end()) return text_reply(404, "404: Not Found");
    std::string name = f->second;
    std::string type = q.count("type") ? q.at("type") : "output";
    for (const char* t : {"output", "input", "temp"}) {
      std::string suffix = std::string(" [") + t + "]";
      if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        name = name.substr(0, name.size() - suffix.size());
        type = t;
      }
    }
    if (name.empty() || name[0] == '/' || name.find("..") != std::string::npos) return empty_reply(400);
    if (type != "output" && type != "input" && type != "temp") return empty_reply(400);
    fs::path dir = base / type;
    if (auto s = q.find("subfolder"); s != q.end() && !s->second.empty()) {
      fs::path sub = fs::path(s->second).is_absolute() ? fs::path(s->second) : dir / s->second;
      if (!inside(dir, sub)) return empty_reply(403);
      dir = sub;
    }
    fs::path file = dir / fs::path(name).filename();  // only the basename is used
    if (!fs::is_regular_file(file)) return text_reply(404, "404: Not Found");
    auto data = core::read_file(file);
    if (!data) return server_error();
    HttpReply r;
    r.headers["Content-Type"] = file.extension() == ".png" ? "image/png" : "application/octet-stream";
    r.headers["Content-Disposition"] = "filename=\"" + file.filename().string() + "\"";
    r.body = *data;
    return r;
  }

  HttpReply upload(const HttpExchange& ex) {
    if (ex.body.size() > 104857600)
      return text_reply(413, "Maximum request body size 104857600 exceeded, actual body size " +
                                 std::to_string(ex.body.size()));
    auto ct = ex.headers.count("content-type") ? ex.headers.at("content-type") : "";
    auto parts = parse_multipart(ct, ex.body);
    if (!parts) return empty_reply(400);
    const Part* image = nullptr;
    std::string type = "input", subfolder;
    bool overwrite = false;
    for (const auto& p : *parts) {
      if (p.name == "image" && p.has_filename) image = &p;
      if (p.name == "type") type = p.body;
      if (p.name == "subfolder") subfolder = p.body;
      if (p.name == "overwrite") overwrite = p.body == "true" || p.body == "1";
    }
    if (!image) return empty_reply(400);
    if (image->filename.empty()) return server_error();
    if (type != "input" && type != "temp" && type != "output") return server_error();
    fs::path root = base / type;
    fs::path dir = root / subfolder;
    if (fs::path(subfolder).is_absolute() || !inside(root, dir)) return empty_reply(400);
    fs::create_directories(dir);
    fs::path target = dir / image->filename;
    if (!inside(root, target)) return empty_reply(400);
    if (!fs::is_directory(target.parent_path())) return server_error();
    std::string stem = target.stem().string(), ext = target.extension().string();
    for (int i = 1; !overwrite && fs::exists(target); ++i) {
      auto existing = core::read_file(target);
      if (existing && *existing == image->body) break;  // same content: reuse the name
      target = target.parent_path() / (stem + " (" + std::to_string(i) + ")" + ext);
    }
    std::ofstream(target, std::ios::binary | std::ios::trunc) << image->body;
    return json_reply({{"name", target.filename().string()}, {"subfolder", subfolder}, {"type", type}});
  }

  HttpReply route(const HttpExchange& ex) {
    if (refuse > 0) {
      --refuse;
      HttpReply r;
      r.drop = true;
      return r;
    }
    if (auto refused = origin_check(ex)) return *refused;
    // Every route is also served under /api.
    std::string path = ex.path.rfind("/api/", 0) == 0 ? ex.path.substr(4) : ex.path;
    auto query = parse_query(ex.target);
    const std::string& m = ex.method;
    if (path == "/system_stats" && m == "GET") return json_reply(k_system_stats);
    if (path == "/prompt" && m == "GET")
      return json_reply({{"exec_info", {{"queue_remaining", queue_remaining()}}}});
    if (path == "/prompt" && m == "POST") return submit(ex.body);
    if (path == "/queue" && m == "GET") {
      json p = json::array();
      for (auto it = pending.rbegin(); it != pending.rend(); ++it) p.push_back(*it);
      return json_reply({{"queue_running", running}, {"queue_pending", p}});
    }
    if (path == "/object_info" && m == "GET") return json_reply(catalog());
    if (path.rfind("/object_info/", 0) == 0 && m == "GET") {
      json cat = catalog();
      std::string cls = url_decode(path.substr(13));
      return json_reply(cat.contains(cls) ? json{{cls, cat[cls]}} : json::object());
    }
    if (path == "/view" && m == "GET") return view(query);
    if (path == "/upload/image" && m == "POST") return upload(ex);
    if (path.rfind("/history", 0) == 0 && m == "GET") {
      if (path.size() > 9) {
        std::string id = path.substr(9);
        if (!history.contains(id)) return json_reply(json::object());  // no 404, ever
        return json_reply({{id, history[id]}});
      }
      std::size_t max_items = history_order.size();
      if (query.count("max_items")) {
        try {
          max_items = static_cast<std::size_t>(std::stoul(query["max_items"]));
        } catch (...) {
          return server_error();  // a non-integer max_items is a 500 on the real server
        }
      }
      // Oldest first, as the server keeps them; max_items takes the newest.
      nlohmann::ordered_json out = nlohmann::ordered_json::object();
      std::size_t skip = history_order.size() > max_items ? history_order.size() - max_items : 0;
      for (std::size_t i = skip; i < history_order.size(); ++i)
        out[history_order[i]] = nlohmann::ordered_json::parse(history[history_order[i]].dump());
      HttpReply r;
      r.headers["Content-Type"] = "application/json; charset=utf-8";
      r.body = out.dump();
      return r;
    }
    if (m == "POST" && (path == "/queue" || path == "/free" || path == "/interrupt" ||
                        path == "/history")) {
      json body = json::parse(ex.body, nullptr, false);
      if (body.is_discarded()) {
        if (path != "/interrupt") return server_error();  // /interrupt tolerates a bad body
        body = json::object();
      }
      if (!body.is_object()) return server_error();
      if (path == "/queue") {
        std::size_t before = pending.size();
        if (body.value("clear", false)) pending.clear();
        if (body.contains("delete"))
          for (const auto& id : body["delete"])
            pending.erase(std::remove_if(pending.begin(), pending.end(),
                                         [&](const json& item) { return item[1] == id; }),
                          pending.end());
        if (body.value("clear", false) || pending.size() != before) broadcast_status();
      } else if (path == "/free") {
        last_free = body;
        if (body.value("free_memory", false)) {
          cache_keys.clear();
          ui_cache.clear();
        }
      } else if (path == "/interrupt") {
        std::string target = body.contains("prompt_id") && body["prompt_id"].is_string()
                                 ? body["prompt_id"].get<std::string>()
                                 : "";
        if (!running.empty() && (target.empty() || running[0][1] == target)) {
          ++interrupts;
          interrupt_flag = true;
          cv.notify_all();
          if (manual_running) {  // nothing executes it: it ends here
            std::string id = running[0][1];
            json data = {{"prompt_id", id}, {"node_id", nullptr}, {"node_type", nullptr},
                         {"executed", json::array()}, {"timestamp", now_ms()}};
            store_history(id, {{"prompt", running[0]}, {"outputs", json::object()},
                               {"status", {{"status_str", "error"}, {"completed", false},
                                           {"messages", {{"execution_interrupted", data}}}}},
                               {"meta", json::object()}});
            running = json::array();
            manual_running = false;
          }
        }
      } else if (path == "/history") {
        if (body.value("clear", false)) {
          history = json::object();
          history_order.clear();
        }
        if (body.contains("delete"))
          for (const auto& id : body["delete"]) {
            history.erase(id.get<std::string>());
            history_order.erase(std::remove(history_order.begin(), history_order.end(), id.get<std::string>()),
                                history_order.end());
          }
      }
      return empty_reply();
    }
    static const std::vector<std::string> known = {"/system_stats", "/prompt", "/queue", "/free",
                                                   "/history", "/object_info", "/interrupt",
                                                   "/upload/image", "/view"};
    if (std::find(known.begin(), known.end(), path) != known.end() && (m == "PUT" || m == "DELETE" || m == "PATCH"))
      return text_reply(405, "405: Method Not Allowed");
    return text_reply(404, "404: Not Found");
  }
};

ComfyFake::ComfyFake() : m_impl(std::make_unique<Impl>()) { m_impl->server = m_impl->make_server(); }
ComfyFake::~ComfyFake() = default;

core::Status ComfyFake::start(int port, const std::string& address) {
  m_impl->address = address;
  TRY(m_impl->server->start(address, port));
  m_impl->port = m_impl->server->port();
  return {};
}

std::string ComfyFake::url() const {
  bool v6 = m_impl->address.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + m_impl->address + "]" : m_impl->address) + ":" +
         std::to_string(m_impl->port);
}

void ComfyFake::refuse_websocket(int http_status) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->ws_refusal = http_status;
}
int ComfyFake::port() const { return m_impl->port; }
fs::path ComfyFake::base_dir() const { return m_impl->base; }

core::Status ComfyFake::restart() {
  m_impl->server->stop();  // cuts every connection; on_close empties the sid table
  {
    std::lock_guard lock(m_impl->mutex);
    // What a real restart loses: the queue, the running prompt, history, caches, temp files.
    m_impl->pending.clear();
    m_impl->history = json::object();
    m_impl->history_order.clear();
    m_impl->cache_keys.clear();
    m_impl->ui_cache.clear();
    m_impl->counter = 0;
    if (!m_impl->running.empty()) {
      m_impl->abandon = true;
      m_impl->interrupt_flag = true;
    }
    m_impl->cv.notify_all();
    std::error_code ec;
    fs::remove_all(m_impl->base / "temp", ec);
    fs::create_directories(m_impl->base / "temp");
  }
  m_impl->server = m_impl->make_server();
  return m_impl->server->start(m_impl->address, m_impl->port);
}

void ComfyFake::set_running(const std::string& prompt_id, const json& prompt) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->running = json::array({json::array({0, prompt_id, prompt, {{"client_id", "autopod"}}, json::array()})});
  m_impl->manual_running = true;
}

void ComfyFake::add_pending(const std::string& prompt_id, double number, const json& prompt) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->hold = true;  // a hand-made queue item is not run
  m_impl->pending.push_back(json::array({number, prompt_id, prompt, json::object(), json::array()}));
}

void ComfyFake::add_history(const std::string& prompt_id, const json& entry) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->store_history(prompt_id, entry);
}

void ComfyFake::hold_queue(bool hold) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->hold = hold;
  m_impl->cv.notify_all();
}

void ComfyFake::set_step_delay(std::chrono::milliseconds d) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->step_delay = d;
}

void ComfyFake::set_previews(bool on) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->previews = on;
}

void ComfyFake::refuse_first(int requests) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->refuse = requests;
}

void ComfyFake::delay_answers(std::chrono::milliseconds delay) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->delay = delay;
}

void ComfyFake::drop_socket_before(const std::string& event_type) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->drop_before = event_type;
}

void ComfyFake::interrupt_at_step(int step) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->interrupt_step = step;
}

void ComfyFake::success_before_history(bool on) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->success_first = on;
}

void ComfyFake::escaping_output_names(bool on) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->escaping_names = on;
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

std::vector<json> ComfyFake::submitted() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->submitted;
}

int ComfyFake::websocket_connections() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->ws_connections;
}

std::map<std::string, std::chrono::steady_clock::time_point> ComfyFake::success_times() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->success_times;
}

}  // namespace autopod::sandbox
