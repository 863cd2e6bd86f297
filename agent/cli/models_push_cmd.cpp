// autopod models push LOCAL_FILE [POD] --folder F [--name N]: this machine's file onto the pod's
// volume over SFTP (models/push.hpp), with a progress bar with speed (plain lines without a
// terminal) and the placed path on stdout.

#include <unistd.h>

#include <chrono>
#include <iostream>

#include "agent/cli/commands.hpp"
#include "agent/pod_ssh.hpp"
#include "models/push.hpp"

namespace autopod::agent {
namespace {

using Clock = std::chrono::steady_clock;

struct PushFlags {
  std::string local, pod, folder, name, models_root;
};

// One bar rewritten in place on a terminal; else a line per phase and per tenth sent.
class PushDisplay {
 public:
  PushDisplay() : m_tty(::isatty(2) == 1) {}
  void operator()(const models::PushProgress& p) {
    auto now = Clock::now();
    if (p.phase != m_phase || !m_started) {
      if (m_tty && m_drawn)
        std::cerr << "\n";
      m_phase = p.phase, m_started = true, m_drawn = false;
      m_start = now, m_start_bytes = p.done;
      if (p.phase != models::PushPhase::sending || !m_tty)
        std::cerr << (p.phase == models::PushPhase::checking
                          ? "checking the partial file on the pod"
                      : p.phase == models::PushPhase::verifying ? "verifying sha256 on the pod"
                      : p.done > 0
                          ? "resuming at " + format_bytes(static_cast<std::uint64_t>(p.done))
                          : std::string("sending"))
                  << "\n";
      return;
    }
    if (p.phase != models::PushPhase::sending)
      return;
    double secs = std::chrono::duration<double>(now - m_start).count();
    double speed = secs > 0 ? static_cast<double>(p.done - m_start_bytes) / secs : 0;
    int pct = p.total > 0 ? static_cast<int>(p.done * 100 / p.total) : 100;
    std::string eta = speed > 0 ? std::to_string(static_cast<long long>(
                                      static_cast<double>(p.total - p.done) / speed)) +
                                      "s"
                                : "?";
    std::string line = std::to_string(pct) + "%  " +
                       format_bytes(static_cast<std::uint64_t>(p.done)) + " / " +
                       format_bytes(static_cast<std::uint64_t>(p.total)) + "  " +
                       format_bytes(static_cast<std::uint64_t>(speed)) + "/s  eta " + eta;
    if (m_tty) {
      if (now - m_drawn_at < std::chrono::milliseconds(100) && p.done < p.total)
        return;
      int filled = pct / 5;
      std::cerr << "\r\x1b[2K[" << std::string(filled, '#') << std::string(20 - filled, '-') << "] "
                << line << std::flush;
      m_drawn = true, m_drawn_at = now;
    } else if (pct / 10 > m_last_tenth || p.done == p.total) {
      m_last_tenth = pct / 10;
      std::cerr << "sent " << line << "\n";
    }
  }
  void end() {
    if (m_tty && m_drawn)
      std::cerr << "\n";
  }

 private:
  bool m_tty;
  bool m_started = false, m_drawn = false;
  models::PushPhase m_phase = models::PushPhase::checking;
  Clock::time_point m_start, m_drawn_at;
  std::int64_t m_start_bytes = 0;
  int m_last_tenth = 0;  // a line at each further tenth
};

core::Status cmd_push(Context& ctx, const PushFlags& f) {
  TRY_ASSIGN(auto cfg, ctx.config());
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto pod, providers::find_pod(*provider, f.pod));
  if (!pod.ssh)
    return core::fail(
        core::ErrorCode::not_found, "pod " + pod.name + " has no direct ssh endpoint yet",
        "it needs 22/tcp exposed and to be running: autopod connect --name " + pod.name);
  models::PushRequest req{f.local, !f.models_root.empty() ? f.models_root : pod.models_root,
                          f.folder, f.name};
  if (req.root.empty())
    return core::fail(core::ErrorCode::invalid_argument,
                      "pod " + pod.name + " names no models root", "pass --models-root");
  TRY(ctx.ensure_key(pod));
  TRY_ASSIGN(auto session, connect_pod(*cfg, pod));
  PushDisplay display;
  auto pushed =
      models::push_file(*session, req, [&](const models::PushProgress& p) { display(p); });
  display.end();
  if (!pushed) {
    auto e = pushed.error();
    if (e.code == core::ErrorCode::network || e.code == core::ErrorCode::timeout)
      e.hint = "run the same push again: it resumes from what arrived";
    return core::fail(e);
  }
  if (pushed->already_there)
    std::cerr << "already on the pod (same sha256)\n";
  if (pushed->restarted)
    std::cerr << "the partial file on the pod held other bytes: sent again\n";
  if (ctx.json())
    std::cout << nlohmann::json{{"path", pushed->path},
                                {"size", pushed->size},
                                {"sha256", pushed->sha256},
                                {"resumed_from", pushed->resumed_from},
                                {"restarted", pushed->restarted},
                                {"already_there", pushed->already_there}}
                     .dump()
              << "\n";
  else
    std::cout << pushed->path << "\n";
  return {};
}

}  // namespace

void add_models_push_command(CLI::App& models, Context& ctx, int& exit_code) {
  static PushFlags f;
  auto* push = models.add_subcommand(
      "push",
      "send a file from this machine to the pod's models root (resumable, sha256-verified)");
  push->add_option("LOCAL_FILE", f.local, "the model file on this machine")->required();
  push->add_option("POD", f.pod, "pod id or name (default: the only pod)");
  push->add_option("--folder", f.folder, "ComfyUI folder key (loras, checkpoints, ...)")
      ->required();
  push->add_option("--name", f.name, "file name on the pod (default: LOCAL_FILE's)");
  push->add_option("--models-root", f.models_root, "the pod's models root (default: the pod's)");
  push->callback(run(ctx, exit_code, [&ctx] { return cmd_push(ctx, f); }));
}

}  // namespace autopod::agent
