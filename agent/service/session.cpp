// One connection of the agent's server: keep-alive requests and replies, 413 with a lingering
// close, deferred jobs, and Server-Sent Events streams (see server_impl.hpp).

#include "agent/service/server_impl.hpp"

#include "core/log.hpp"

namespace autopod::agent::service {

using nlohmann::json;

namespace {

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto part = q.substr(0, amp);
    auto eq = part.find('=');
    if (!part.empty())
      out[url_decode(part.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(part.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

}  // namespace

Session::Session(tcp::socket socket, Server::Impl& server)
    : m_stream(std::move(socket)), m_server(server), m_heartbeat(m_stream.get_executor()) {}

void Session::start() {
  asio::dispatch(m_stream.get_executor(), [self = shared_from_this()] { self->read_header(); });
}

void Session::read_header() {
  m_parser.emplace();
  m_parser->body_limit(m_server.options.max_body_bytes);
  m_stream.expires_after(std::chrono::seconds(60));  // an idle keep-alive connection
  http::async_read_header(m_stream, m_buffer, *m_parser,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
}

void Session::on_header(beast::error_code ec) {
  if (ec == http::error::body_limit)
    return refuse_and_drain(error_reply(413, "the body is larger than " +
                                                 std::to_string(m_server.options.max_body_bytes) + " bytes",
                                        "send inputs by path, or start the agent with a larger --max-body-mb"));
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
      ec == asio::error::connection_reset || ec == asio::error::eof)
    return close();
  if (ec) return refuse_and_drain(error_reply(400, "malformed http request", ec.message()));
  const auto& h = m_parser->get();
  if (beast::iequals(h[http::field::expect], "100-continue")) {
    auto text = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
    return asio::async_write(m_stream, asio::buffer(*text),
                             [self = shared_from_this(), text](beast::error_code e, std::size_t) {
                               if (e) return self->close();
                               self->read_body();
                             });
  }
  read_body();
}

void Session::read_body() {
  m_stream.expires_after(std::chrono::seconds(300));  // a large body over a slow link
  http::async_read(m_stream, m_buffer, *m_parser,
                   [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_request(ec); });
}

void Session::on_request(beast::error_code ec) {
  if (ec == http::error::body_limit)
    return refuse_and_drain(error_reply(413, "the body is larger than " +
                                                 std::to_string(m_server.options.max_body_bytes) + " bytes"));
  if (ec) return close();
  auto msg = m_parser->release();
  Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  auto q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string::npos) req.query = parse_query(std::string_view(req.target).substr(q + 1));
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers[name] = std::string(f.value());
  }
  req.body = std::move(msg.body());
  if (!msg.keep_alive()) req.headers["connection"] = "close";  // HTTP/1.0 without keep-alive
  m_busy = true;
  dispatch(std::move(req));
}

void Session::dispatch(Request req) {
  bool keep = !beast::iequals(req.header("connection"), "close");
  Routed routed;
  try {
    routed = m_server.router(req);
  } catch (const std::exception& e) {
    core::logger("agent")->error("{} {}: {}", req.method, req.path, e.what());
    routed = error_reply(500, "internal error", e.what());
  }
  if (auto* reply = std::get_if<Reply>(&routed)) return write(std::move(*reply), keep);
  if (auto* sse = std::get_if<SseStart>(&routed)) return start_stream(*sse);
  auto job = std::get<Deferred>(std::move(routed));
  asio::post(m_server.blocking, [self = shared_from_this(), job = std::move(job), keep] {
    Reply r;
    try {
      r = job();
    } catch (const std::exception& e) {
      r = error_reply(500, "internal error", e.what());
    }
    asio::post(self->m_stream.get_executor(), [self, r = std::move(r), keep]() mutable { self->write(std::move(r), keep); });
  });
}

void Session::write(Reply reply, bool keep_alive) {
  if (m_closed) return;
  auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(reply.status), 11);
  res->set(http::field::content_type, reply.content_type);
  for (const auto& [k, v] : reply.headers) res->set(k, v);
  res->body() = std::move(reply.body);
  res->keep_alive(keep_alive && !m_ending);
  res->prepare_payload();
  m_stream.expires_after(std::chrono::seconds(60));
  http::async_write(m_stream, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
    self->m_busy = false;
    if (ec || !res->keep_alive() || self->m_ending) return self->close();
    self->read_header();
  });
}

void Session::refuse_and_drain(Reply reply) {
  auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(reply.status), 11);
  res->set(http::field::content_type, reply.content_type);
  res->body() = std::move(reply.body);
  res->keep_alive(false);
  res->prepare_payload();
  http::async_write(m_stream, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
    if (ec) return self->close();
    // Read what the client still sends before closing, or it may see a reset instead of the answer.
    beast::error_code ignored;
    self->m_stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    self->m_stream.expires_after(std::chrono::seconds(5));
    self->drain();
  });
}

void Session::drain() {
  m_stream.async_read_some(asio::buffer(m_sink), [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) return self->close();
    self->drain();
  });
}

void Session::close() {
  if (m_closed) return;
  m_closed = true;
  if (m_sse) m_server.store.unsubscribe(m_task, m_token);
  m_heartbeat.cancel();
  beast::error_code ec;
  m_stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  m_stream.socket().close(ec);
  m_server.forget(shared_from_this());
}

void Session::shut() {
  asio::post(m_stream.get_executor(), [self = shared_from_this()] {
    if (self->m_closed) return;
    if (self->m_sse) {
      auto task = self->m_server.store.get(self->m_task);
      self->push("event: shutdown\ndata: " + (task ? api_view(*task).dump() : "{}") + "\n\n", true);
    } else if (self->m_busy) {
      self->m_ending = true;  // closes once the answer is written
    } else {
      self->close();
    }
  });
}

void Session::kill() {
  asio::post(m_stream.get_executor(), [self = shared_from_this()] { self->close(); });
}

}  // namespace autopod::agent::service
