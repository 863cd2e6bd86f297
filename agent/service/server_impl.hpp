#pragma once
// Internal to agent/service/: the server's pieces shared by server.cpp (listener, life cycle)
// and session.cpp (one connection: requests, replies, event streams).

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "agent/service/server.hpp"

namespace autopod::agent::service {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class Session;

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(const ServiceOptions& o, TaskStore& s, Router r)
      : options(o), store(s), router(std::move(r)), acceptor(asio::make_strand(io)) {}

  const ServiceOptions& options;
  TaskStore& store;
  Router router;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  asio::thread_pool blocking{4};
  int port = 0;
  std::mutex mutex;
  std::condition_variable cv;
  std::set<std::shared_ptr<Session>> sessions;
  bool stopping = false;

  void accept();
  void forget(const std::shared_ptr<Session>& s);
};

// One connection: keep-alive requests, or (after an events route) a stream that ends with the
// task's final event, the agent's shutdown, or the client leaving.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server::Impl& server);
  void start();
  // From the server at stop: streams get a `shutdown` event, then every connection closes.
  void shut();
  // After shut() had its chance: closes the socket whatever is left to write.
  void kill();

 private:
  void read_header();
  void on_header(beast::error_code ec);
  void read_body();
  void on_request(beast::error_code ec);
  void dispatch(Request req);
  void write(Reply reply, bool keep_alive);
  void refuse_and_drain(Reply reply);
  void drain();
  void close();

  void start_stream(const SseStart& sse);
  void push(std::string text, bool last);
  void write_next();
  void heartbeat();
  void watch_client();

  beast::tcp_stream m_stream;
  beast::flat_buffer m_buffer;
  std::optional<http::request_parser<http::string_body>> m_parser;
  Server::Impl& m_server;
  bool m_closed = false;
  bool m_busy = false;  // a request is being answered

  bool m_sse = false;
  std::string m_task;
  std::uint64_t m_token = 0;
  std::deque<std::string> m_out;
  std::size_t m_out_bytes = 0;
  bool m_writing = false;
  bool m_ending = false;
  asio::steady_timer m_heartbeat;
  std::array<char, 512> m_sink{};
};

}  // namespace autopod::agent::service
