// A connection that became a Server-Sent Events stream: the task's missed events (after
// Last-Event-ID), then live ones, a comment heartbeat, and the end after the final event.

#include "agent/service/server_impl.hpp"

namespace autopod::agent::service {

namespace {

constexpr std::size_t k_max_backlog = 8u << 20;  // a reader this far behind is cut (it may reconnect)

std::string sse_text(const TaskEvent& e) {
  return "id: " + std::to_string(e.id) + "\nevent: " + e.name + "\ndata: " + e.data + "\n\n";
}

}  // namespace

void Session::start_stream(const SseStart& sse) {
  m_sse = true;
  m_task = sse.task_id;
  m_stream.expires_never();
  std::weak_ptr<Session> weak = shared_from_this();
  auto executor = m_stream.get_executor();
  auto replay = m_server.store.subscribe(
      m_task, sse.last_event_id,
      [weak, executor](const TaskEvent& e) {
        auto self = weak.lock();
        if (!self) return;
        asio::post(executor, [self, text = sse_text(e), last = e.final()]() mutable { self->push(std::move(text), last); });
      },
      m_token);
  if (!replay) {
    m_sse = false;
    return write(error_reply(404, "no task " + m_task), false);
  }
  push("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
       "Connection: close\r\nX-Accel-Buffering: no\r\n\r\nretry: 2000\n\n",
       false);
  bool ended = false;
  for (const auto& e : *replay) {
    push(sse_text(e), e.final());
    ended = ended || e.final();
  }
  // A client that already saw the final event gets nothing more: end now.
  auto task = m_server.store.get(m_task);
  if (!ended && task && is_final(task->status)) {
    auto events = m_server.store.events(m_task);
    if (events.empty() || events.back().id <= sse.last_event_id) push("", true);
  }
  heartbeat();
  watch_client();
}

void Session::push(std::string text, bool last) {
  if (m_closed || m_ending) return;
  m_out_bytes += text.size();
  if (!text.empty()) m_out.push_back(std::move(text));
  if (last) m_ending = true;
  if (m_out_bytes > k_max_backlog) return close();
  write_next();
}

void Session::write_next() {
  if (m_writing || m_closed) return;
  if (m_out.empty()) {
    if (m_ending) close();
    return;
  }
  m_writing = true;
  asio::async_write(m_stream, asio::buffer(m_out.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
    self->m_writing = false;
    self->m_out_bytes -= self->m_out.front().size();
    self->m_out.pop_front();
    if (ec) return self->close();
    self->write_next();
  });
}

void Session::heartbeat() {
  m_heartbeat.expires_after(m_server.options.heartbeat);
  m_heartbeat.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec || self->m_closed) return;
    self->push(": heartbeat\n\n", false);
    self->heartbeat();
  });
}

void Session::watch_client() {
  // The client sends nothing on a stream; the read ends when it goes away.
  m_stream.async_read_some(asio::buffer(m_sink), [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) return self->close();
    self->watch_client();
  });
}

}  // namespace autopod::agent::service
