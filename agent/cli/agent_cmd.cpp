// autopod agent [serve] | agent token | agent stop | agent status: the local task service
// (agent/service/service.hpp), in the foreground or detached like the tunnels.

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <mutex>

#include "agent/cli/commands.hpp"
#include "agent/comfy_target.hpp"
#include "agent/model_sync.hpp"
#include "agent/service/service.hpp"
#include "core/daemon.hpp"
#include "core/fs.hpp"
#include "core/http.hpp"
#include "core/log.hpp"
#include "core/text.hpp"

namespace autopod::agent {
namespace {

using core::ErrorCode;
using nlohmann::json;

struct AgentFlags {
  std::string listen = "127.0.0.1:8787";
  ComfyTarget target;
  bool detach = false;
  bool daemon_child = false;  // hidden: the detached process itself
  int max_body_mb = 32;
  int max_running = 0;
  double prune_hours = 24;
  int heartbeat_ms = 15000;
  int webhook_retry_ms = 1000;
  int webhook_timeout_ms = 10000;
  std::string step_names;
};

// The pods and their ComfyUI through the CLI's own context (provider, tunnels). The context is
// not thread-safe: one caller at a time.
class CliPods : public service::PodAccess {
 public:
  CliPods(Context& ctx, ComfyTarget target) : m_ctx(ctx), m_target(std::move(target)) {}
  core::Result<std::string> comfy_url(const std::string& pod) override {
    std::lock_guard lock(m_mutex);
    ComfyTarget t = m_target;
    if (!pod.empty()) t.pod = pod;
    return comfy_url_for(m_ctx, t, [](const std::string& line) { core::logger("agent")->info("{}", line); });
  }
  core::Result<models::SyncTarget> models_target(const std::string& pod) override {
    std::lock_guard lock(m_mutex);
    return pod_models_target(m_ctx, pod.empty() ? m_target.pod : pod, "");
  }
  core::Result<json> pods() override {
    std::lock_guard lock(m_mutex);
    TRY_ASSIGN(auto provider, m_ctx.provider());
    TRY_ASSIGN(auto list, provider->list_pods());
    return json{{"pods", list}};
  }

 private:
  Context& m_ctx;
  ComfyTarget m_target;
  std::mutex m_mutex;
};

std::filesystem::path record_file(const core::Home& home) { return home.root() / "agent.json"; }

core::Result<std::pair<std::string, int>> parse_listen(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return core::fail(ErrorCode::invalid_argument, "--listen wants ADDRESS:PORT, got " + text);
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    int port = std::stoi(text.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    return std::make_pair(host, port);
  } catch (const std::exception&) {
    return core::fail(ErrorCode::invalid_argument, "--listen wants ADDRESS:PORT, got " + text);
  }
}

// systemd's readiness protocol: one datagram to $NOTIFY_SOCKET ("@name": abstract namespace).
void sd_notify_ready() {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string p = path;
  if (p.size() >= sizeof addr.sun_path) return;
  std::copy(p.begin(), p.end(), addr.sun_path);
  if (p[0] == '@') addr.sun_path[0] = '\0';
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  const char msg[] = "READY=1";
  ::sendto(fd, msg, sizeof msg - 1, 0, reinterpret_cast<sockaddr*>(&addr),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + p.size()));
  ::close(fd);
}

core::Result<std::map<std::string, std::string>> load_step_names(const std::string& file) {
  std::map<std::string, std::string> out;
  if (file.empty()) return out;
  TRY_ASSIGN(auto text, core::read_file(file));
  try {
    json table = json::parse(text);
    for (const auto& [k, v] : table.items()) out[k] = v.get<std::string>();
  } catch (const json::exception& e) {
    return core::fail(ErrorCode::invalid_argument, file + ": " + e.what(),
                      "a JSON object: {\"KSampler\": \"Sampling image...\"}");
  }
  return out;
}

core::Result<service::ServiceOptions> options_for(Context& ctx, const AgentFlags& f) {
  TRY_ASSIGN(auto cfg, ctx.config());
  service::ServiceOptions o;
  o.home = cfg->home;
  TRY_ASSIGN(auto listen, parse_listen(f.listen));
  o.address = listen.first;
  o.port = listen.second;
  o.max_body_bytes = static_cast<std::size_t>(std::max(1, f.max_body_mb)) << 20;
  o.max_running_per_pod = f.max_running;
  o.prune_after = std::chrono::milliseconds(static_cast<long long>(f.prune_hours * 3600 * 1000));
  o.heartbeat = std::chrono::milliseconds(std::max(10, f.heartbeat_ms));
  o.webhook_retry.first = std::chrono::milliseconds(std::max(1, f.webhook_retry_ms));
  o.webhook_timeout = std::chrono::milliseconds(std::max(100, f.webhook_timeout_ms));
  TRY_ASSIGN(o.step_names, load_step_names(f.step_names));
  o.model_endpoints = models::Endpoints::from_config(*cfg);  // tokens: the environment, else config
  return o;
}

// Foreground (or the detached process): serves until SIGTERM or SIGINT.
core::Status serve(Context& ctx, const AgentFlags& f) {
  TRY_ASSIGN(auto options, options_for(ctx, f));
  if (f.daemon_child) TRY(core::setup_logging(ctx.config().value()->log_level, options.home.logs() / "agent.log"));
  else if (!ctx.options().verbose && !ctx.options().overrides.log_level) TRY(core::setup_logging("info"));
  bool loopback = options.address.rfind("127.", 0) == 0 || options.address == "::1" || options.address == "localhost";
  if (!loopback)
    std::cerr << "warning: listening on " << options.address
              << " lets other machines reach the agent (they still need its token)\n";
  // Threads started from here on inherit the mask; the signals are taken by sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  CliPods pods(ctx, f.target);
  service::Service svc(options, pods);
  if (auto st = svc.start(); !st) {
    if (f.daemon_child) core::report_readiness(json{{"ok", false}, {"error", st.error().describe()}}.dump());
    return st;
  }
  std::string host = options.address.find(':') != std::string::npos ? "[" + options.address + "]" : options.address;
  std::string url = "http://" + host + ":" + std::to_string(svc.port());
  if (f.daemon_child) {
    auto start = core::process_start_time(::getpid());
    TRY(core::write_file_atomic(record_file(options.home),
                                json{{"version", 1}, {"pid", ::getpid()}, {"startTime", start ? *start : 0},
                                     {"url", url}, {"startedAt", core::iso_time()}}.dump(2), 0600));
    core::report_readiness(json{{"ok", true}, {"url", url}, {"pid", ::getpid()}}.dump());
  }
  std::cout << "listening on " << url << std::endl;  // the readiness line scripts wait for
  sd_notify_ready();
  int sig = 0;
  sigwait(&signals, &sig);
  core::logger("agent")->info("signal {}: stopping", sig);
  svc.stop();
  if (f.daemon_child) std::filesystem::remove(record_file(options.home));
  return {};
}

std::vector<std::string> own_argv() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> argv;
  for (std::string a; std::getline(in, a, '\0');) argv.push_back(a);
  return argv;
}

core::Status detach(Context& ctx) {
  TRY_ASSIGN(auto cfg, ctx.config());
  std::error_code ec;
  auto argv = own_argv();
  argv[0] = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  argv.erase(std::remove(argv.begin(), argv.end(), "--detach"), argv.end());
  argv.insert(argv.begin() + 1, {"--home", cfg->home.root().string()});
  argv.push_back("--daemon-child");
  TRY(core::ensure_dir(cfg->home.logs()));
  TRY_ASSIGN(auto report, core::spawn_daemon(argv, "", std::chrono::seconds(60)));
  json answer = json::parse(report, nullptr, false);
  if (answer.is_discarded() || !answer.value("ok", false))
    return core::fail(ErrorCode::internal,
                      answer.is_discarded() ? "the agent exited before it was ready" : answer.value("error", "failed"),
                      "see " + (cfg->home.logs() / "agent.log").string());
  std::cerr << "agent running in the background (pid " << answer["pid"] << "); logs in "
            << (cfg->home.logs() / "agent.log").string() << "\n";
  std::cout << "listening on " << answer["url"].get<std::string>() << std::endl;
  return {};
}

core::Result<json> running_agent(const core::Home& home) {
  auto text = core::read_file(record_file(home));
  if (!text) return core::fail(ErrorCode::not_found, "no agent is running in the background",
                               "start one with: autopod agent --detach");
  json r = json::parse(*text, nullptr, false);
  if (r.is_discarded() || !core::process_alive(r.value("pid", 0), r.value("startTime", std::uint64_t{0}))) {
    std::filesystem::remove(record_file(home));
    return core::fail(ErrorCode::not_found, "no agent is running in the background (its record was stale)",
                      "start one with: autopod agent --detach");
  }
  return r;
}

}  // namespace

void add_agent_commands(CLI::App& app, Context& ctx, int& exit_code) {
  static AgentFlags f;
  auto* agent = app.add_subcommand("agent", "local task service for applications (HTTP, SSE, webhooks)");
  agent->add_option("--listen", f.listen, "ADDRESS:PORT to serve on (default 127.0.0.1:8787; port 0: any)");
  agent->add_option("--pod", f.target.pod, "the pod generations go to unless they name one");
  agent->add_option("--url", f.target.url, "use this ComfyUI directly instead of a pod's, e.g. http://127.0.0.1:8188");
  agent->add_flag("--no-tunnel", f.target.no_tunnel, "do not start a tunnel; use 127.0.0.1:--local-port");
  agent->add_option("--local-port", f.target.local_port, "local end of the tunnel to ComfyUI (default 8188)");
  agent->add_option("--remote-port", f.target.remote_port, "ComfyUI's port on the pod (default 8188)");
  agent->add_flag("--detach", f.detach, "run in the background (autopod agent stop|status)");
  agent->add_flag("--daemon-child", f.daemon_child)->group("");
  agent->add_option("--max-body-mb", f.max_body_mb, "larger request bodies get 413 (default 32)");
  agent->add_option("--max-running", f.max_running, "generations submitted at once per pod (default: no limit)");
  agent->add_option("--prune-hours", f.prune_hours, "drop finished tasks and outputs after this long (default 24)");
  agent->add_option("--step-names", f.step_names, "JSON file: node type -> step name, over the built-in table");
  agent->add_option("--heartbeat-ms", f.heartbeat_ms, "SSE heartbeat interval (default 15000)")->group("");
  agent->add_option("--webhook-retry-ms", f.webhook_retry_ms, "first webhook retry delay (default 1000)")->group("");
  agent->add_option("--webhook-timeout-ms", f.webhook_timeout_ms, "one webhook attempt's limit (default 10000)")->group("");
  // CLI11 runs this after a subcommand's callback: only serve when none was given, and leave
  // the subcommand's exit code alone.
  agent->callback([&ctx, &exit_code, agent] {
    if (!agent->get_subcommands().empty()) return;
    run(ctx, exit_code, [&ctx] { return f.detach ? detach(ctx) : serve(ctx, f); })();
  });

  static bool webhook = false;
  auto* token = agent->add_subcommand("token", "print the agent's bearer token (made on first use)");
  token->add_flag("--webhook", webhook, "print the webhook signing secret instead");
  token->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto cfg, ctx.config());
    TRY_ASSIGN(auto secret, webhook ? service::webhook_secret(cfg->home) : service::agent_token(cfg->home));
    std::cout << secret << "\n";
    return {};
  }));
  auto* stop = agent->add_subcommand("stop", "stop the background agent (SIGTERM, then waits)");
  stop->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto cfg, ctx.config());
    auto r = running_agent(cfg->home);
    if (!r) {
      std::cerr << "no agent is running; nothing to stop\n";
      return {};
    }
    TRY(core::terminate_process((*r)["pid"].get<pid_t>(), std::chrono::seconds(20)));
    std::filesystem::remove(record_file(cfg->home));
    std::cerr << "stopped the agent (pid " << (*r)["pid"] << ")\n";
    return {};
  }));
  auto* status = agent->add_subcommand("status", "is the background agent running, and where");
  status->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto cfg, ctx.config());
    TRY_ASSIGN(auto r, running_agent(cfg->home));
    core::HttpRequest req;
    req.url = r["url"].get<std::string>() + "/health";
    req.timeout = std::chrono::milliseconds(3000);
    auto health = core::make_curl_transport()->send(req);
    bool ok = health && health->status == 200;
    if (ctx.json()) {
      print_json({{"running", true}, {"pid", r["pid"]}, {"url", r["url"]}, {"startedAt", r["startedAt"]},
                  {"healthy", ok}});
      return {};
    }
    std::cout << "agent running (pid " << r["pid"] << ") on " << r["url"].get<std::string>() << " since "
              << r["startedAt"].get<std::string>() << (ok ? "" : "; not answering /health") << "\n";
    return {};
  }));
}

}  // namespace autopod::agent
