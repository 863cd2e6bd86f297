// The agent's HTTP server: listener and life cycle (see server.hpp; connections in session.cpp).

#include "agent/service/server_impl.hpp"

#include "core/log.hpp"

namespace autopod::agent::service {

using nlohmann::json;

std::string Request::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

Reply json_reply(int status, const json& body) { return Reply{status, "application/json", body.dump(), {}}; }

Reply error_reply(int status, const std::string& message, const std::string& details) {
  return json_reply(status, {{"error", {{"message", message}, {"details", details}}}});
}

Server::Server(const ServiceOptions& options, TaskStore& store, Router router)
    : m_impl(std::make_shared<Impl>(options, store, std::move(router))) {}

Server::~Server() { stop(); }

core::Status Server::start() {
  auto& impl = *m_impl;
  beast::error_code ec;
  auto address = asio::ip::make_address(impl.options.address, ec);
  if (ec) return core::fail(core::ErrorCode::invalid_argument, "not an IP address: " + impl.options.address);
  tcp::endpoint endpoint(address, static_cast<unsigned short>(impl.options.port));
  impl.acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl.acceptor.bind(endpoint, ec);
  if (!ec) impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return core::fail(core::ErrorCode::network,
                      "cannot listen on " + impl.options.address + ":" + std::to_string(impl.options.port) + ": " +
                          ec.message(),
                      "is another agent running? autopod agent status; or pick another --listen address");
  impl.port = impl.acceptor.local_endpoint().port();
  impl.accept();
  for (int i = 0; i < std::max(1, impl.options.io_threads); ++i)
    impl.threads.emplace_back([this] { m_impl->io.run(); });
  return {};
}

int Server::port() const { return m_impl->port; }

void Server::Impl::accept() {
  acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
    if (ec) return;  // closed at stop
    auto session = std::make_shared<Session>(std::move(s), *self);
    {
      std::lock_guard lock(self->mutex);
      if (self->stopping) return;
      self->sessions.insert(session);
    }
    session->start();
    self->accept();
  });
}

void Server::Impl::forget(const std::shared_ptr<Session>& s) {
  std::lock_guard lock(mutex);
  sessions.erase(s);
  cv.notify_all();
}

void Server::stop() {
  auto& impl = *m_impl;
  std::set<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(impl.mutex);
    if (impl.stopping) return;
    impl.stopping = true;
    sessions = impl.sessions;
  }
  if (impl.threads.empty()) return;
  asio::post(impl.acceptor.get_executor(), [&impl] {
    beast::error_code ec;
    impl.acceptor.close(ec);
  });
  for (const auto& s : sessions) s->shut();
  sessions.clear();
  std::set<std::shared_ptr<Session>> left;
  {
    // Streams send their last event first; a client that reads nothing does not hold us long.
    std::unique_lock lock(impl.mutex);
    impl.cv.wait_for(lock, std::chrono::seconds(2), [&] { return impl.sessions.empty(); });
    left = impl.sessions;
  }
  for (const auto& s : left) s->kill();
  left.clear();
  impl.blocking.join();
  // Every socket, timer and the acceptor is closed: the threads run out of work and return.
  for (auto& t : impl.threads) t.join();
  impl.threads.clear();
}

}  // namespace autopod::agent::service
