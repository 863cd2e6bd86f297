// Service: wires the store, the generations, the webhooks and the server (see service.hpp).

#include "agent/service/service.hpp"

#include <condition_variable>
#include <set>
#include <thread>

#include "agent/service/api.hpp"
#include "agent/service/generations.hpp"
#include "agent/service/secrets.hpp"
#include "agent/service/server.hpp"
#include "agent/service/store.hpp"
#include "agent/service/syncs.hpp"
#include "agent/service/webhooks.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"

namespace autopod::agent::service {

using nlohmann::json;

struct Service::Impl {
  Impl(ServiceOptions o, PodAccess& p) : options(std::move(o)), pods(p), store(options.home.tasks()) {}

  ServiceOptions options;
  PodAccess& pods;
  TaskStore store;
  std::unique_ptr<WebhookSender> webhooks;
  std::unique_ptr<Generations> generations;
  std::unique_ptr<Syncs> syncs;
  std::unique_ptr<Api> api;
  std::unique_ptr<Server> server;
  std::thread pruner;
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  bool started = false;

  void resend_webhooks();
  void prune_loop();
};

Service::Service(ServiceOptions options, PodAccess& pods) : m_impl(std::make_unique<Impl>(std::move(options), pods)) {}

Service::~Service() { stop(); }

core::Result<std::string> agent_token(const core::Home& home) { return load_or_make_secret(home.agent_token()); }
core::Result<std::string> webhook_secret(const core::Home& home) { return load_or_make_secret(home.webhook_secret()); }

core::Status Service::start() {
  auto& m = *m_impl;
  const core::Home& home = m.options.home;
  TRY(core::ensure_dir(home.root()));
  TRY(core::ensure_dir(home.tasks()));
  TRY(core::ensure_dir(home.outputs()));
  TRY_ASSIGN(auto token, agent_token(home));
  TRY_ASSIGN(auto secret, webhook_secret(home));
  TRY(m.store.load());
  WebhookOptions w;
  w.retry = m.options.webhook_retry;
  w.give_up = m.options.webhook_give_up;
  w.timeout = m.options.webhook_timeout;
  m.webhooks = std::make_unique<WebhookSender>(
      secret, w, [&m](const std::string& id, json attempt) { m.store.add_attempt(id, std::move(attempt)); });
  m.store.set_listener([&m](const Task& t, const TaskEvent& e) {
    if (!t.webhook.empty()) m.webhooks->post(t.id, t.webhook, e.name, e.id, e.data);
  });
  m.generations = std::make_unique<Generations>(m.store, m.pods, m.options);
  m.syncs = std::make_unique<Syncs>(m.store, m.pods, m.options);
  m.api = std::make_unique<Api>(Api{m.options, m.store, *m.generations, *m.syncs, m.pods, token});
  m.server = std::make_unique<Server>(m.options, m.store, make_router(*m.api));
  TRY(m.server->start());
  m.started = true;
  int resumed = 0;
  for (const auto& t : m.store.list()) {
    if (is_final(t.status)) continue;
    if (t.kind == "generation") m.generations->start(t.id);
    if (t.kind == "model-sync") m.syncs->start(t.id);  // re-attaches to its pod job
    ++resumed;
  }
  if (resumed) core::logger("agent")->info("resuming {} unfinished task(s)", resumed);
  m.resend_webhooks();
  m.pruner = std::thread([&m] { m.prune_loop(); });
  return {};
}

// State changes whose webhook was neither delivered nor given up before the last stop.
void Service::Impl::resend_webhooks() {
  for (const auto& t : store.list()) {
    if (t.webhook.empty()) continue;
    std::set<std::uint64_t> settled;
    for (const auto& a : store.attempts(t.id).value_or(json::array()))
      if (a.value("outcome", "") != "retrying") settled.insert(a.value("eventId", std::uint64_t{0}));
    for (const auto& e : store.events(t.id))
      if (e.final() && !settled.count(e.id)) webhooks->post(t.id, t.webhook, e.name, e.id, e.data);
  }
}

void Service::Impl::prune_loop() {
  std::unique_lock lock(mutex);
  while (!cv.wait_for(lock, options.prune_interval, [&] { return stopping; })) {
    lock.unlock();
    auto gone = store.prune(std::chrono::system_clock::now() - options.prune_after, options.home.outputs());
    if (!gone.empty()) core::logger("agent")->info("pruned {} finished task(s)", gone.size());
    lock.lock();
  }
}

int Service::port() const { return m_impl->server ? m_impl->server->port() : 0; }

void Service::stop() {
  auto& m = *m_impl;
  {
    std::lock_guard lock(m.mutex);
    if (m.stopping) return;
    m.stopping = true;
  }
  m.cv.notify_all();
  if (m.pruner.joinable()) m.pruner.join();
  if (m.server) m.server->stop();
  if (m.generations) m.generations->stop();
  if (m.syncs) m.syncs->stop();
  if (m.webhooks) m.webhooks->stop();
  m.store.flush();
  if (m.started) core::logger("agent")->info("stopped; unfinished tasks resume at the next start");
}

}  // namespace autopod::agent::service
