#pragma once
// A small threaded HTTP/1.1 server on loopback (Boost.Beast) for the sandbox and test fakes.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/result.hpp"

namespace autopod::sandbox {

struct HttpExchange {
  std::string method;
  std::string target;  // path and query
  std::string path;    // without the query
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

struct HttpReply {
  int status = 200;
  std::map<std::string, std::string> headers;
  std::string body;
  std::chrono::milliseconds delay{0};  // wait this long before answering (slow answers)
  bool drop = false;                   // close the connection without answering
};

using HttpHandler = std::function<HttpReply(const HttpExchange&)>;

// One accepted WebSocket. Every method may be called from any thread; sends are queued and
// written in order by the connection's own thread.
class WsSession {
 public:
  virtual ~WsSession() = default;
  virtual void send_text(std::string text) = 0;
  virtual void send_binary(std::string bytes) = 0;
  virtual void close() = 0;  // after the queued sends: a close handshake
  virtual void drop() = 0;   // cut the TCP connection at once, without a close frame
};

struct WsHandlers {
  // For each upgrade request: a reply refuses it (e.g. 403), nullopt accepts it.
  std::function<std::optional<HttpReply>(const HttpExchange&)> accept;
  std::function<void(const HttpExchange&, const std::shared_ptr<WsSession>&)> on_open;
  std::function<void(WsSession&, const std::string& data, bool binary)> on_message;
  std::function<void(WsSession&)> on_close;  // once, however the connection ended
};

// Serves each connection on its own thread with keep-alive. stop() (and the destructor)
// closes the listener and every open connection and waits for the threads.
class HttpServer {
 public:
  explicit HttpServer(HttpHandler handler, WsHandlers websocket = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Listens on address:port (0 picks a free port) and returns at once.
  core::Status start(const std::string& address = "127.0.0.1", int port = 0);
  void stop();
  int port() const;
  std::string url() const;  // "http://127.0.0.1:PORT"

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace autopod::sandbox
