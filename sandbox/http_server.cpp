#include "sandbox/http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "core/text.hpp"

namespace autopod::sandbox {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// A WebSocket served on its own io_context by the connection's thread: one read loop and a
// write queue, so sends from other threads never race the reads' automatic pong replies.
class WsConnection final : public WsSession {
 public:
  WsConnection(tcp::socket::native_handle_type fd, WsHandlers& handlers)
      : m_ws(tcp::socket(m_io, tcp::v4(), fd)), m_handlers(handlers) {}

  // Completes the handshake for `req` and serves until the connection ends.
  template <class Request>
  void run(const Request& req, const std::function<void()>& on_open) {
    beast::error_code ec;
    m_ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(beast::http::field::server, "Python/3.11 aiohttp/3.8.5");
    }));
    m_ws.accept(req, ec);
    if (ec) return finish();
    m_ws.read_message_max(16 << 20);
    opened = true;
    on_open();  // its sends are queued ahead of anything else
    read_next();
    m_io.run();
    finish();
  }

  void send_text(std::string text) override { post_send(std::move(text), false); }
  void send_binary(std::string bytes) override { post_send(std::move(bytes), true); }

  void close() override {
    post([this] {
      m_close_after_flush = true;
      pump();
    });
  }

  void drop() override {
    post([this] {
      beast::error_code ec;
      beast::get_lowest_layer(m_ws).shutdown(tcp::socket::shutdown_both, ec);
      beast::get_lowest_layer(m_ws).close(ec);
    });
  }

  bool opened = false;

 private:
  void post(std::function<void()> fn) {
    std::lock_guard lock(m_mutex);
    if (!m_dead) asio::post(m_io, std::move(fn));
  }

  void post_send(std::string data, bool binary) {
    post([this, d = std::move(data), binary]() mutable {
      m_out.emplace_back(std::move(d), binary);
      pump();
    });
  }

  void pump() {
    if (m_writing || m_closing) return;
    if (m_out.empty()) {
      if (!m_close_after_flush) return;
      m_closing = true;
      m_ws.async_close(websocket::close_code::normal, [](beast::error_code) {});
      return;
    }
    m_writing = true;
    m_ws.binary(m_out.front().second);
    m_ws.async_write(asio::buffer(m_out.front().first), [this](beast::error_code ec, std::size_t) {
      m_writing = false;
      m_out.pop_front();
      if (ec) {
        m_out.clear();
        return;
      }
      pump();
    });
  }

  void read_next() {
    m_ws.async_read(m_in, [this](beast::error_code ec, std::size_t) {
      if (ec) {
        beast::error_code ignored;
        beast::get_lowest_layer(m_ws).close(ignored);
        return;
      }
      std::string data = beast::buffers_to_string(m_in.data());
      m_in.consume(m_in.size());
      if (m_handlers.on_message) m_handlers.on_message(*this, data, !m_ws.got_text());
      read_next();
    });
  }

  void finish() {
    std::lock_guard lock(m_mutex);
    m_dead = true;
  }

  asio::io_context m_io;
  websocket::stream<tcp::socket> m_ws;
  WsHandlers& m_handlers;
  beast::flat_buffer m_in;
  std::deque<std::pair<std::string, bool>> m_out;
  bool m_writing = false, m_closing = false, m_close_after_flush = false;
  std::mutex m_mutex;
  bool m_dead = false;
};

}  // namespace

struct HttpServer::Impl {
  HttpHandler handler;
  WsHandlers websocket;
  std::set<WsSession*> sessions;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread accept_thread;
  std::mutex mutex;
  std::condition_variable cv;
  std::set<tcp::socket*> open;
  int active = 0;
  std::atomic<bool> stopping{false};
  int port = 0;

  void serve(tcp::socket& socket) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(512ull << 20);  // the fakes answer 413 themselves, as their servers do
      http::read(socket, buffer, parser, ec);
      if (ec) break;
      auto req = parser.release();
      HttpExchange ex;
      ex.method = std::string(req.method_string());
      ex.target = std::string(req.target());
      ex.path = ex.target.substr(0, ex.target.find('?'));
      for (const auto& field : req) {
        ex.headers[core::lowercase(std::string(field.name_string()))] = std::string(field.value());
      }
      ex.body = req.body();
      if (websocket.accept && websocket::is_upgrade(req)) {
        if (auto refusal = websocket.accept(ex)) {
          write_reply(socket, req, *refusal, ec);
          break;
        }
        serve_websocket(socket, req, ex);
        return;
      }
      HttpReply reply = handler(ex);
      if (reply.delay.count() > 0) {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, reply.delay, [&] { return stopping.load(); });
      }
      if (reply.drop || stopping) break;
      if (!write_reply(socket, req, reply, ec)) break;
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  // False when the connection should end.
  static bool write_reply(tcp::socket& socket, const http::request<http::string_body>& req,
                          HttpReply& reply, beast::error_code& ec) {
    http::response<http::string_body> res{static_cast<http::status>(reply.status), req.version()};
    for (const auto& [k, v] : reply.headers) res.set(k, v);
    res.keep_alive(req.keep_alive());
    res.body() = std::move(reply.body);
    res.prepare_payload();
    http::write(socket, res, ec);
    return !ec && res.keep_alive();
  }

  void serve_websocket(tcp::socket& socket, const http::request<http::string_body>& req,
                       const HttpExchange& ex) {
    auto session = std::make_shared<WsConnection>(socket.release(), websocket);
    {
      std::lock_guard lock(mutex);
      if (stopping) return;
      sessions.insert(session.get());
    }
    session->run(req, [&] {
      if (websocket.on_open) websocket.on_open(ex, session);
    });
    if (session->opened && websocket.on_close) websocket.on_close(*session);
    std::lock_guard lock(mutex);
    sessions.erase(session.get());
  }

  void accept_loop() {
    for (;;) {
      tcp::socket socket(io);
      beast::error_code ec;
      acceptor.accept(socket, ec);
      if (stopping) return;
      if (ec) continue;
      std::lock_guard lock(mutex);
      ++active;
      std::thread([this, s = std::move(socket)]() mutable {
        {
          std::lock_guard l(mutex);
          open.insert(&s);
        }
        serve(s);
        std::lock_guard l(mutex);
        open.erase(&s);
        --active;
        cv.notify_all();
      }).detach();
    }
  }
};

HttpServer::HttpServer(HttpHandler handler, WsHandlers websocket)
    : m_impl(std::make_unique<Impl>()) {
  m_impl->handler = std::move(handler);
  m_impl->websocket = std::move(websocket);
}

HttpServer::~HttpServer() { stop(); }

core::Status HttpServer::start(const std::string& address, int port) {
  beast::error_code ec;
  tcp::endpoint ep(asio::ip::make_address(address, ec), static_cast<unsigned short>(port));
  if (ec) return core::fail(core::ErrorCode::invalid_argument, "bad address " + address);
  m_impl->acceptor.open(ep.protocol(), ec);
  if (!ec) m_impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) m_impl->acceptor.bind(ep, ec);
  if (!ec) m_impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return core::fail(core::ErrorCode::io, "cannot listen on " + address + ":" +
                                               std::to_string(port) + ": " + ec.message());
  m_impl->port = m_impl->acceptor.local_endpoint().port();
  m_impl->accept_thread = std::thread([this] { m_impl->accept_loop(); });
  return {};
}

void HttpServer::stop() {
  if (!m_impl || !m_impl->accept_thread.joinable()) return;
  m_impl->stopping = true;
  beast::error_code ec;
  // shutdown() wakes the blocking accept(); close() alone does not on Linux.
  ::shutdown(m_impl->acceptor.native_handle(), SHUT_RDWR);
  m_impl->accept_thread.join();
  m_impl->acceptor.close(ec);
  std::unique_lock lock(m_impl->mutex);
  for (auto* s : m_impl->open) s->shutdown(tcp::socket::shutdown_both, ec);
  for (auto* s : m_impl->sessions) s->drop();
  m_impl->cv.notify_all();
  m_impl->cv.wait(lock, [&] { return m_impl->active == 0; });
}

int HttpServer::port() const { return m_impl->port; }
std::string HttpServer::url() const { return "http://127.0.0.1:" + std::to_string(port()); }

}  // namespace autopod::sandbox
