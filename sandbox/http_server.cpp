#include "sandbox/http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

namespace autopod::sandbox {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  HttpHandler handler;
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
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) break;
      HttpExchange ex;
      ex.method = std::string(req.method_string());
      ex.target = std::string(req.target());
      ex.path = ex.target.substr(0, ex.target.find('?'));
      for (const auto& field : req) {
        std::string name(field.name_string());
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        ex.headers[name] = std::string(field.value());
      }
      ex.body = req.body();
      HttpReply reply = handler(ex);
      if (reply.delay.count() > 0) {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, reply.delay, [&] { return stopping.load(); });
      }
      if (reply.drop || stopping) break;
      http::response<http::string_body> res{static_cast<http::status>(reply.status),
                                            req.version()};
      for (const auto& [k, v] : reply.headers) res.set(k, v);
      res.keep_alive(req.keep_alive());
      res.body() = std::move(reply.body);
      res.prepare_payload();
      http::write(socket, res, ec);
      if (ec || !res.keep_alive()) break;
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
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

HttpServer::HttpServer(HttpHandler handler) : m_impl(std::make_unique<Impl>()) {
  m_impl->handler = std::move(handler);
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
  m_impl->cv.notify_all();
  m_impl->cv.wait(lock, [&] { return m_impl->active == 0; });
}

int HttpServer::port() const { return m_impl->port; }
std::string HttpServer::url() const { return "http://127.0.0.1:" + std::to_string(port()); }

}  // namespace autopod::sandbox
