// Runner: the WebSocket session (connect, read, ping, reconnect, close) (see runner.hpp).

#include <boost/asio/ip/tcp.hpp>

#include "comfy/hints.hpp"
#include "comfy/runner.hpp"
#include "core/log.hpp"

namespace autopod::comfy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace fs = std::filesystem;
using core::ErrorCode;
using core::fail;
using nlohmann::json;

void Runner::pump(std::chrono::milliseconds d) {
  m_io.restart();
  m_io.run_for(d);
}

void Runner::start_connect() {
  auto conn = std::make_shared<Conn>(m_io);
  m_conn = conn;
  ++m_connects;
  asio::ip::tcp::resolver resolver(m_io);
  beast::error_code ec;
  const core::Url& url = m_http.url();
  auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec) return connect_failed(conn, ec);
  beast::get_lowest_layer(conn->ws).expires_after(std::chrono::seconds(10));
  beast::get_lowest_layer(conn->ws).async_connect(endpoints, [this, conn, url](beast::error_code e, const asio::ip::tcp::endpoint&) {
    if (conn != m_conn) return;
    if (e) return connect_failed(conn, e);
    beast::get_lowest_layer(conn->ws).expires_never();
    auto t = websocket::stream_base::timeout::suggested(beast::role_type::client);
    t.handshake_timeout = std::chrono::seconds(10);
    conn->ws.set_option(t);
    // Beast adds no Origin header; ComfyUI answers 403 to a mismatched one on loopback.
    conn->ws.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(beast::http::field::user_agent, "autopod/0.1");
    }));
    conn->ws.read_message_max(64ull << 20);
    // The stream keeps this callback: a raw pointer, or the connection would own itself.
    conn->ws.control_callback([this, raw = conn.get()](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::pong && raw == m_conn.get()) m_last_pong = now();
    });
    conn->ws.async_handshake(conn->handshake, url.authority(), url.path + "/ws?clientId=" + m_client_id,
                             [this, conn](beast::error_code he) {
                               if (conn != m_conn) return;
                               if (he) return connect_failed(conn, he);
                               connected(conn);
                             });
  });
}

void Runner::connect_failed(const std::shared_ptr<Conn>& conn, beast::error_code ec) {
  beast::error_code ignored;
  beast::get_lowest_layer(conn->ws).socket().close(ignored);
  std::string what = "cannot open the WebSocket to " + m_http.base_url() + "/ws: " + ec.message();
  // A server that answered the upgrade with a status refused it (the origin check, an
  // authenticating proxy, not a ComfyUI): waiting will not change its mind.
  int status = conn->handshake.result_int();
  bool refused = ec == websocket::error::upgrade_declined && status != 0 && status != 101;
  if (refused)
    what = "comfyui refused the WebSocket handshake at " + m_http.base_url() + "/ws with http " +
           std::to_string(status);
  if (m_runs.empty() && (refused || m_connects >= 3)) {
    // Nothing submitted yet: do not queue prompts whose events we could not follow.
    std::string hint = refused ? refusal_hint(status, conn->handshake.body().empty()) : "";
    m_connect_error = core::make_error(
        refused ? ErrorCode::protocol : ErrorCode::network, what,
        !hint.empty() ? hint : "is ComfyUI running on the pod, and the tunnel up? autopod comfy status");
    if (refused) m_connect_error->http_status = status;
    return;
  }
  core::logger("comfy")->info("{}", what);
  schedule_reconnect();
}

void Runner::connected(const std::shared_ptr<Conn>& conn) {
  conn->open = true;
  m_backoff.reset();
  m_last_frame = m_last_pong = now();
  if (m_connects > 1) {
    if (!m_quiet_reconnect) m_display.message("reconnected to comfyui's event stream");
    m_quiet_reconnect = false;
    m_reconcile_due = true;  // events sent while we were away are not replayed
  }
  read(conn);
}

void Runner::read(const std::shared_ptr<Conn>& conn) {
  conn->ws.async_read(conn->buffer, [this, conn](beast::error_code ec, std::size_t) {
    if (conn != m_conn) return;
    if (ec) {
      conn->open = false;
      if (!m_closing) {
        m_display.message("comfyui's event stream dropped (" + ec.message() + "); reconnecting");
        beast::error_code ignored;
        beast::get_lowest_layer(conn->ws).socket().close(ignored);
        schedule_reconnect();
        m_reconcile_due = true;  // what was sent meanwhile is lost: ask over HTTP at once
      }
      return;
    }
    m_last_frame = now();
    std::string_view frame(static_cast<const char*>(conn->buffer.data().data()), conn->buffer.size());
    auto event = conn->ws.got_binary() ? parse_binary_frame(frame) : parse_text_frame(frame);
    conn->buffer.consume(conn->buffer.size());
    if (event) on_event(*event);
    else core::logger("comfy")->debug("{}", event.error().message);
    read(conn);
  });
}

void Runner::reconnect_when_due() {
  if (!m_reconnect_pending || now() < m_reconnect_at) return;
  m_reconnect_pending = false;
  start_connect();
}

void Runner::schedule_reconnect() {
  m_reconnect_at = now() + m_backoff.next();
  m_reconnect_pending = true;
}

void Runner::close_then_reconnect() {
  auto conn = m_conn;
  if (!conn || !conn->open) return;
  conn->open = false;
  m_conn = nullptr;
  await_close(conn, std::chrono::seconds(2));
  start_connect();
}

void Runner::close() {
  m_closing = true;
  if (m_conn && m_conn->open) await_close(m_conn, std::chrono::seconds(1));
  m_conn = nullptr;
}

void Runner::await_close(const std::shared_ptr<Conn>& conn, std::chrono::milliseconds limit) {
  auto done = std::make_shared<bool>(false);
  conn->open = false;
  conn->ws.async_close(websocket::close_code::normal, [done, conn](beast::error_code) { *done = true; });
  auto deadline = now() + limit;
  while (!*done && now() < deadline) pump(std::chrono::milliseconds(10));
  beast::error_code ignored;
  beast::get_lowest_layer(conn->ws).socket().close(ignored);
}

}  // namespace autopod::comfy
