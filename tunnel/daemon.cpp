// The forwarding daemon: one poll loop for listeners, client sockets, the SSH session, the
// control socket and signals; reconnects with backoff when the link drops.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <malloc.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <optional>
#include <random>

#include "core/backoff.hpp"
#include "core/daemon.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "tunnel/listeners.hpp"
#include "tunnel/registry.hpp"
#include "tunnel/session_pool.hpp"
#include "tunnel/tunnel.hpp"

namespace autopod::tunnel {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

namespace {

using SteadyClock = std::chrono::steady_clock;

class Daemon {
 public:
  Daemon(std::string id, core::Home home, TunnelSpec spec)
      : m_id(std::move(id)), m_home(std::move(home)), m_spec(std::move(spec)),
        m_registry(m_home), m_log(core::logger("tunnel")) {}

  ~Daemon() {
    for (auto& l : m_listeners)
      if (l.fd >= 0) ::close(l.fd);
    if (m_control >= 0) {
      ::close(m_control);
      ::unlink(control_path().c_str());
    }
  }

  int run() {
    if (auto st = start(); !st) {
      m_log->error("{}", st.error().message);
      core::report_readiness(json{{"ok", false},
                                  {"code", core::to_string(st.error().code)},
                                  {"message", st.error().message},
                                  {"hint", st.error().hint}}.dump());
      return 1;
    }
    auto self = core::process_start_time(::getpid());
    core::report_readiness(json{{"ok", true}, {"pid", ::getpid()},
                                {"start_time", self ? *self : 0}}.dump());
    return loop();
  }

 private:
  std::filesystem::path control_path() const { return m_home.tunnel_socket(m_id); }

  core::Status start() {
    // Signals arrive through a descriptor so the poll loop sees them like any other event.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    m_signals = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    TRY_ASSIGN(m_listeners, listen_on(m_spec.forwards));
    core::SshTarget target;
    target.endpoint = m_spec.ssh;
    target.known_hosts = m_home.known_hosts();
    target.timeout = m_spec.connect_timeout;
    m_pool = std::make_unique<SessionPool>(target, m_spec.window_bytes, m_spec.open_timeout);
    TRY(m_pool->connect());
    TRY(open_control());
    TRY(register_entry());
    m_log->info("tunnel {} to {}@{}:{} ready", m_id, m_spec.ssh.user, m_spec.ssh.host, m_spec.ssh.port);
    return {};
  }

  core::Status open_control() {
    TRY(core::ensure_dir(m_home.tunnels_dir(), 0700));
    auto path = control_path().string();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
      return fail(ErrorCode::invalid_argument, "AUTOPOD_HOME is too long for a control socket (" + path + ")",
                  "use a shorter AUTOPOD_HOME");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ::unlink(path.c_str());
    m_control = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (::bind(m_control, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(m_control, 16) != 0)
      return fail(ErrorCode::io, "cannot open control socket " + path + ": " + std::strerror(errno));
    ::chmod(path.c_str(), 0600);
    return {};
  }

  core::Status register_entry() {
    auto self = core::process_start_time(::getpid());
    TunnelInfo info;
    info.id = m_id;
    info.spec = m_spec;
    info.pid = ::getpid();
    info.start_time = self ? *self : 0;
    info.started_at = core::iso_time();
    info.status = "active";
    info.log_file = m_home.tunnel_log(m_id);
    return m_registry.put(info);
  }

  void set_status(const std::string& status, const std::string& error) {
    m_status = status;
    auto r = m_registry.set_status(m_id, status, error);
    if (!r) m_log->warn("cannot record status {}: {}", status, r.error().message);
  }

  void remove_entry() {
    auto r = m_registry.remove(m_id);
    if (!r) m_log->warn("cannot remove tunnel entry: {}", r.error().message);
  }

  json status_json() const {
    auto s = m_pool->stats();
    return {{"status", m_status},
            {"bytes_to_pod", s.bytes_to_pod},
            {"bytes_from_pod", s.bytes_from_pod},
            {"connections_open", s.connections_open},
            {"connections_total", s.connections_total},
            {"opens_pending", s.opens_pending},
            {"ssh_sessions", s.sessions},
            {"reconnects", m_reconnects},
            {"last_error", m_last_error}};
  }

  void answer_control() {
    for (;;) {
      int c = ::accept4(m_control, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::string text = status_json().dump() + "\n";
      ssize_t n = ::send(c, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)n;
      ::close(c);
    }
  }

  void accept_clients(Listener& l) {
    for (;;) {
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      int c = ::accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &len,
                        SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c < 0) {
        if (errno == EMFILE || errno == ENFILE) {
          m_log->warn("out of file descriptors; pausing accepts for 1s");
          m_accept_paused_until = SteadyClock::now() + std::chrono::seconds(1);
        }
        return;
      }
      int on = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      char host[INET_ADDRSTRLEN] = "127.0.0.1";
      ::inet_ntop(AF_INET, &peer.sin_addr, host, sizeof host);
      m_pool->add_client(c, {l.forward.remote_host, l.forward.remote_port}, host,
                         ntohs(peer.sin_port));
    }
  }

  // The pool lost its last session and has closed every client (a FIN, not a reset).
  void lose_session(const core::Error& why) {
    m_log->warn("{}; reconnecting", why.message);
    m_last_error = why.message;
    m_attempt = 0;
    m_backoff.reset();
    m_next_attempt = SteadyClock::now();
    set_status("reconnecting", why.message);
  }

  // Returns false when the daemon should give up (authentication or host key refused).
  bool try_reconnect() {
    auto st = m_pool->connect();
    if (st) {
      ++m_reconnects;
      m_last_error.clear();
      set_status("active", "");
      m_log->info("reconnected after {} attempt(s)", m_attempt + 1);
      return true;
    }
    m_last_error = st.error().message;
    if (st.error().code == ErrorCode::auth || st.error().code == ErrorCode::invalid_argument) {
      m_log->error("giving up: {}", st.error().message);
      set_status("failed", st.error().message);
      return false;
    }
    ++m_attempt;
    m_next_attempt = SteadyClock::now() + m_backoff.next();
    m_log->warn("reconnect attempt {} failed: {}", m_attempt, st.error().message);
    set_status("reconnecting", st.error().message);
    return true;
  }

  // Milliseconds poll() may wait: not at all after progress; until the next reconnect attempt
  // while disconnected; else until the pool's next deadline (an open timing out).
  int poll_timeout(bool progress, bool connected, bool accepting) const {
    if (progress) return 0;
    auto now = SteadyClock::now();
    std::optional<SteadyClock::time_point> until;
    if (!connected) until = m_next_attempt;
    else if (!accepting) until = now + std::chrono::seconds(1);
    if (connected) {
      auto wake = m_pool->next_wakeup();
      if (wake && (!until || *wake < *until)) until = wake;
      // With several sessions, or opens in flight, libssh2 may hold data it read for one
      // session while poll() watches only sockets: look again at least every 100 ms rather than
      // trust every wake-up (a 20 s stall of an echo was seen once under load).
      auto s = m_pool->stats();
      auto soon = now + std::chrono::milliseconds(100);
      if ((s.sessions > 1 || s.opens_pending > 0) && (!until || soon < *until)) until = soon;
    }
    if (!until) return -1;
    // Round up: waking a millisecond early would only spin.
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(*until - now).count();
    return static_cast<int>(std::clamp<long long>(wait, 0, 3600 * 1000));
  }

  // A burst of connections leaves their freed buffers resident (glibc returns only the top of
  // the heap by itself): hand them back when the last connection closes, so that the next burst
  // reuses pages instead of adding to them and a daemon that runs for weeks stays small.
  void trim_when_idle() {
    auto s = m_pool->stats();
    bool busy = s.connections_open > 0 || s.opens_pending > 0;
    if (m_had_connections && !busy) ::malloc_trim(0);
    m_had_connections = busy;
  }

  int loop() {
    std::vector<pollfd> fds;
    bool progress = false;
    for (;;) {
      fds.clear();
      fds.push_back({m_signals, POLLIN, 0});
      fds.push_back({m_control, POLLIN, 0});
      std::size_t listeners_at = fds.size();
      bool connected = m_pool->connected();
      bool accepting = connected && SteadyClock::now() >= m_accept_paused_until;
      for (auto& l : m_listeners) fds.push_back({accepting ? l.fd : -1, POLLIN, 0});
      if (connected) m_pool->add_poll_fds(fds);
      int n = ::poll(fds.data(), fds.size(), poll_timeout(progress, connected, accepting));
      if (n < 0 && errno != EINTR) {
        m_log->error("poll: {}", std::strerror(errno));
        return 1;
      }
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si{};
        while (::read(m_signals, &si, sizeof si) == sizeof si) {
          if (si.ssi_signo == SIGHUP) {
            m_next_attempt = SteadyClock::now();  // e.g. after a network change: retry now
            continue;
          }
          m_log->info("signal {}: closing", si.ssi_signo);
          m_pool.reset();
          remove_entry();
          return 0;
        }
      }
      if (fds[1].revents & POLLIN) answer_control();
      progress = false;
      if (connected) {
        for (std::size_t i = 0; i < m_listeners.size(); ++i)
          if (fds[listeners_at + i].revents & POLLIN) accept_clients(m_listeners[i]);
        auto r = m_pool->service(fds);
        if (!r) {
          lose_session(r.error());
        } else {
          progress = *r;
        }
        trim_when_idle();
      }
      if (!m_pool->connected() && SteadyClock::now() >= m_next_attempt) {
        if (!try_reconnect()) return 2;
      }
    }
  }

  std::string m_id;
  core::Home m_home;
  TunnelSpec m_spec;
  Registry m_registry;
  bool m_had_connections = false;
  std::shared_ptr<spdlog::logger> m_log;
  std::vector<Listener> m_listeners;
  int m_control = -1;
  int m_signals = -1;
  std::unique_ptr<SessionPool> m_pool;
  std::string m_status = "active";
  std::string m_last_error;
  int m_reconnects = 0;
  int m_attempt = 0;
  SteadyClock::time_point m_next_attempt{};
  SteadyClock::time_point m_accept_paused_until{};
  // autossh-like: 1 s doubling to 30 s, jittered so that tunnels cut together do not retry together.
  core::Backoff m_backoff{{std::chrono::seconds(1), std::chrono::seconds(30), core::Jitter::half}};
};

}  // namespace

int run_tunnel_daemon() {
  std::string input;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    input.append(buf, static_cast<std::size_t>(n));
  }
  json doc;
  TunnelSpec spec;
  std::string id;
  core::Home home;
  try {
    doc = json::parse(input);
    id = doc.at("id").get<std::string>();
    home = core::Home(doc.at("home").get<std::string>());
    spec = spec_from_json(doc.at("spec"));
  } catch (const std::exception& e) {
    core::report_readiness(json{{"ok", false}, {"code", "internal"},
                                {"message", std::string("bad daemon input: ") + e.what()}}.dump());
    return 2;
  }
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ::dup2(null, 0);
  ::close(null);
  (void)core::ensure_dir(home.logs(), 0700);
  (void)core::setup_daemon_logging(spec.log_level, home.tunnel_log(id));
  Daemon daemon(id, home, spec);
  return daemon.run();
}

}  // namespace autopod::tunnel
