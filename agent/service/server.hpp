#pragma once
// Internal to agent/service/: the HTTP/1.1 server (Boost.Beast on a few Asio threads). Each
// request is routed to a Reply, to a deferred job (work that blocks, run on a separate pool so
// the event streams never wait for it), or to a Server-Sent Events stream of a task's events.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>

#include "agent/service/service.hpp"
#include "agent/service/store.hpp"
#include "core/http.hpp"
#include "core/result.hpp"

namespace autopod::agent::service {

struct Request {
  std::string method;
  std::string target;  // path and query, as sent
  std::string path;    // without the query
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::string header(const std::string& name) const;
};

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  core::Headers headers;
};

struct SseStart {
  std::string task_id;
  std::uint64_t last_event_id = 0;
};

using Deferred = std::function<Reply()>;
using Routed = std::variant<Reply, SseStart, Deferred>;
using Router = std::function<Routed(const Request&)>;

// {"error": {"message", "details"}} with `status`.
Reply error_reply(int status, const std::string& message, const std::string& details = {});
Reply json_reply(int status, const nlohmann::json& body);

class Server {
 public:
  Server(const ServiceOptions& options, TaskStore& store, Router router);
  ~Server();  // stop()
  // Binds and starts serving; network error naming the address when it cannot bind.
  core::Status start();
  int port() const;
  // Closes the listener, ends every stream with a `shutdown` event and every connection, and
  // joins the threads.
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> m_impl;
};

}  // namespace autopod::agent::service
