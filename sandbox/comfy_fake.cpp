// The ComfyUI fake (see comfy_fake.hpp): set-up, the WebSocket side and what tests drive.

#include "sandbox/comfy_fake_impl.hpp"

namespace autopod::sandbox {

using namespace comfy_fake;  // NOLINT: the fake's own helpers

ComfyFake::Impl::Impl() {
  char tmpl[] = "/tmp/autopod-comfy-XXXXXX";
  base = ::mkdtemp(tmpl);
  for (const char* d : {"input", "output", "temp"})
    fs::create_directories(base / d);
  worker = std::thread([this] { work(); });
}

ComfyFake::Impl::~Impl() {
  {
    std::lock_guard lock(mutex);
    stopping = true;
    cv.notify_all();
  }
  worker.join();
  if (server)
    server->stop();
  std::error_code ec;
  fs::remove_all(base, ec);
}

std::unique_ptr<HttpServer> ComfyFake::Impl::make_server() {
  WsHandlers ws;
  ws.accept = [this](const HttpExchange& ex) -> std::optional<HttpReply> {
    std::lock_guard lock(mutex);
    std::string path = ex.path.rfind("/api/", 0) == 0 ? ex.path.substr(4) : ex.path;
    if (path != "/ws")
      return text_reply(404, "404: Not Found");
    if (auto refused = origin_check(ex))
      return refused;
    // As the origin check (an empty 403), an authenticating proxy (401/407) or another server
    // (404) would answer.
    if (ws_refusal == 403)
      return empty_reply(403);
    if (ws_refusal != 0)
      return text_reply(ws_refusal, std::to_string(ws_refusal) + ": refused");
    return std::nullopt;
  };
  ws.on_open = [this](const HttpExchange& ex, const std::shared_ptr<WsSession>& s) {
    std::lock_guard lock(mutex);
    ++ws_connections;
    auto q = parse_query(ex.target);
    std::string sid =
        q.count("clientId") && !q["clientId"].empty() ? q["clientId"] : random_hex(32);
    sids[sid] = s;  // replaces an older socket with this id: that one hears nothing from now on
    sockets[s.get()] = Socket{sid};
    s->send_text(json{
        {"type", "status"},
        {"data",
         {{"status", {{"exec_info", {{"queue_remaining", queue_remaining()}}}}}, {"sid", sid}}}}
                     .dump());
    if (!running.empty() && running[0][3].value("client_id", "") == sid && !executing_node.empty())
      s->send_text(json{{"type", "executing"}, {"data", {{"node", executing_node}}}}.dump());
  };
  ws.on_message = [this](WsSession& s, const std::string& data, bool binary) {
    std::lock_guard lock(mutex);
    auto& sock = sockets[&s];
    if (binary || sock.first_object_seen)
      return;
    json msg = json::parse(data, nullptr, false);
    if (msg.is_discarded() || !msg.is_object())
      return;  // does not use up the slot
    sock.first_object_seen = true;
    if (msg.value("type", "") != "feature_flags" || !msg.contains("data") ||
        !msg["data"].is_object())
      return;
    sock.flags_negotiated = msg["data"].value("supports_preview_metadata", false);
    s.send_text(
        json{{"type", "feature_flags"},
             {"data", {{"supports_preview_metadata", true}, {"max_upload_size", 104857600}}}}
            .dump());
  };
  ws.on_close = [this](WsSession& s) {
    std::lock_guard lock(mutex);
    auto it = sockets.find(&s);
    if (it == sockets.end())
      return;
    // The real handler removes the table entry for its sid, even when a newer socket owns it.
    sids.erase(it->second.sid);
    sockets.erase(it);
  };
  return std::make_unique<HttpServer>([this](const HttpExchange& ex) { return handle(ex); }, ws);
}

void ComfyFake::Impl::store_history(const std::string& id, const json& entry) {
  if (!history.contains(id))
    history_order.push_back(id);
  history[id] = entry;
}

void ComfyFake::Impl::broadcast_text(const std::string& text) {
  for (auto& [sid, s] : sids)
    s->send_text(text);
}

void ComfyFake::Impl::broadcast_status() {
  broadcast_text(
      json{{"type", "status"},
           {"data", {{"status", {{"exec_info", {{"queue_remaining", queue_remaining()}}}}}}}}
          .dump());
}

// Per-prompt event to the submitting socket only, or (`spray`) to every socket without a cid.
void ComfyFake::Impl::send_event(const std::string& cid,
                                 const std::string& type,
                                 const json& data,
                                 bool spray) {
  if (!drop_before.empty() && drop_before == type && !cid.empty()) {
    drop_before.clear();
    if (auto it = sids.find(cid); it != sids.end())
      it->second->drop();
  }
  std::string text = json{{"type", type}, {"data", data}}.dump();
  if (event_sent)
    event_sent(type, data);
  if (cid.empty()) {
    if (spray)
      broadcast_text(text);
    return;
  }
  if (auto it = sids.find(cid); it != sids.end())
    it->second->send_text(text);
}

// Around each `progress`: type 4 before it for a socket that negotiated the flag, type 1 after
// it otherwise (and to every socket when the prompt has no client id).
void ComfyFake::Impl::send_preview(const std::string& cid,
                                   const std::string& prompt_id,
                                   const std::string& node,
                                   bool before_progress) {
  if (cid.empty()) {  // without a cid every socket gets type 1
    if (!before_progress)
      for (auto& [sid, s] : sids)
        s->send_binary(be32(1) + be32(2) + k_png);
    return;
  }
  auto it = sids.find(cid);
  if (it == sids.end())
    return;
  bool flagged = sockets[it->second.get()].flags_negotiated;
  if (flagged != before_progress)
    return;
  if (flagged) {
    std::string meta =
        json{{"node_id", node},           {"prompt_id", prompt_id}, {"display_node_id", node},
             {"parent_node_id", nullptr}, {"real_node_id", node},   {"image_type", "image/png"}}
            .dump();
    it->second->send_binary(be32(4) + be32(static_cast<std::uint32_t>(meta.size())) + meta + k_png);
  } else {
    it->second->send_binary(be32(1) + be32(2) + k_png);
  }
}

void ComfyFake::Impl::send_text_frame(const std::string& node, const std::string& text) {
  std::string frame = be32(3) + be32(static_cast<std::uint32_t>(node.size())) + node + text;
  for (auto& [sid, s] : sids)
    s->send_binary(frame);
}

ComfyFake::ComfyFake() : m_impl(std::make_unique<Impl>()) {
  m_impl->server = m_impl->make_server();
}
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
int ComfyFake::port() const {
  return m_impl->port;
}
fs::path ComfyFake::base_dir() const {
  return m_impl->base;
}

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
  m_impl->running =
      json::array({json::array({0, prompt_id, prompt, {{"client_id", "autopod"}}, json::array()})});
  m_impl->manual_running = true;
}

void ComfyFake::add_pending(const std::string& prompt_id, double number, const json& prompt) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->hold = true;  // a hand-made queue item is not run
  m_impl->pending.push_back(
      json::array({number, prompt_id, prompt, json::object(), json::array()}));
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

void ComfyFake::on_event_sent(std::function<void(const std::string&, const nlohmann::json&)> f) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->event_sent = std::move(f);
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
