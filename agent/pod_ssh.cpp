#include "agent/pod_ssh.hpp"

#include <csignal>

namespace autopod::agent {

namespace {

core::SshTarget target_of(const core::Config& cfg, const providers::Pod& pod) {
  core::SshTarget target;
  target.endpoint = *pod.ssh;
  target.known_hosts = cfg.home.known_hosts();
  return target;
}

// 128+N for a command killed by signal NAME, as a local shell reports it.
int signal_status(const std::string& name) {
  const std::pair<const char*, int> known[] = {
      {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT},
      {"KILL", SIGKILL}, {"SEGV", SIGSEGV}, {"PIPE", SIGPIPE}, {"TERM", SIGTERM}};
  for (const auto& [n, number] : known)
    if (name == n)
      return 128 + number;
  return 255;
}

}  // namespace

core::Result<std::unique_ptr<core::SshSession>> connect_pod(const core::Config& cfg,
                                                            const providers::Pod& pod) {
  return core::SshSession::connect(target_of(cfg, pod));
}

models::PodExec pod_exec(const core::Config& cfg, const providers::Pod& pod) {
  auto session = std::make_shared<std::unique_ptr<core::SshSession>>();
  return [session, target = target_of(cfg, pod)](
             const std::string& command,
             const std::string& input) -> core::Result<core::ProcessOutput> {
    if (!*session) {
      TRY_ASSIGN(*session, core::SshSession::connect(target));
    }
    auto r = core::ssh_exec(**session, command, input, std::chrono::minutes(10));
    if (!r) {
      session->reset();  // a timeout or a broken link leaves the session unusable
      return core::fail(r.error());
    }
    int status = r->signal.empty() ? r->exit_status : signal_status(r->signal);
    return core::ProcessOutput{status, std::move(r->out), std::move(r->err)};
  };
}

}  // namespace autopod::agent
