// ssh_exec and SshCommand: one command on an exec channel, its stdin fed while stdout and stderr
// are drained, in non-blocking mode so the deadline holds and neither side waits on the other's
// full window.

#include <poll.h>

#include <algorithm>

#include "core/ssh_session.hpp"

namespace autopod::core {

using Clock = std::chrono::steady_clock;

// One exec channel driven non-blocking (ssh_exec, SshCommand).
class ExecChannel {
 public:
  ExecChannel(SshSession& session, Clock::time_point deadline, std::string what)
      : m_ssh(session.get()),
        m_socket(session.socket()),
        m_deadline(deadline),
        m_what(std::move(what)) {}
  ~ExecChannel() {
    if (m_channel) {
      libssh2_session_set_blocking(m_ssh, 0);
      libssh2_channel_free(m_channel);  // never blocks: best effort on failure paths
    }
    libssh2_session_set_blocking(m_ssh, 1);
  }
  void set_deadline(Clock::time_point deadline) { m_deadline = deadline; }
  void set_blocking(bool on) { libssh2_session_set_blocking(m_ssh, on ? 1 : 0); }

  // Waits until the socket is ready in the direction libssh2 is blocked on, at most until the
  // deadline. A pass that moved nothing may leave data libssh2 already read in its packet list
  // (one stream's read pulls the other's packets), so a wait is capped at 20 ms.
  Status wait() {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(m_deadline - Clock::now());
    if (left.count() <= 0)
      return fail(ErrorCode::timeout, m_what + " did not finish in time",
                  "the pod may be overloaded; try again, or check it with autopod ssh");
    int dirs = libssh2_session_block_directions(m_ssh);
    short events = 0;
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
      events |= POLLIN;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
      events |= POLLOUT;
    pollfd p{m_socket, static_cast<short>(events ? events : POLLIN), 0};
    ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 20)));
    return {};
  }
  bool outbound_blocked() const {
    return libssh2_session_block_directions(m_ssh) & LIBSSH2_SESSION_BLOCK_OUTBOUND;
  }
  Status lost(const std::string& during) {
    return fail(ErrorCode::network,
                m_what + ": ssh session lost during " + during + ": " + ssh_error(m_ssh),
                "check the pod is running (autopod info) and try again");
  }

  // Opens the channel and runs `command`, leaving the session non-blocking.
  Status start(const std::string& command) {
    libssh2_session_set_blocking(m_ssh, 0);
    while (!(m_channel = libssh2_channel_open_session(m_ssh))) {
      if (libssh2_session_last_errno(m_ssh) != LIBSSH2_ERROR_EAGAIN)
        return lost("channel open");
      TRY(wait());
    }
    int rc;
    while ((rc = libssh2_channel_exec(m_channel, command.c_str())) == LIBSSH2_ERROR_EAGAIN)
      TRY(wait());
    if (rc != 0)
      return fail(ErrorCode::remote,
                  m_what + ": the server refused to run the command: " + ssh_error(m_ssh),
                  "the pod's sshd must allow exec for this user");
    return {};
  }

  // Writes what is left of `input` (then EOF) and reads both streams until the channel's EOF.
  // 1.10's partial-packet rule (reference §1): after an EAGAIN with the socket blocked outbound,
  // the same call is repeated before any other, since a read may send a window adjust.
  Status pump(std::string_view input, ExecResult& r) {
    std::size_t sent = 0;
    bool eof_sent = false, input_closed = false;
    char buf[64 * 1024];
    for (;;) {
      bool moved = false;
      if (!input_closed && sent < input.size()) {
        auto n = libssh2_channel_write(m_channel, input.data() + sent,
                                       std::min<std::size_t>(input.size() - sent, 256 * 1024));
        if (n >= 0)
          sent += static_cast<std::size_t>(n), moved = n > 0;
        else if (n == LIBSSH2_ERROR_EAGAIN && outbound_blocked()) {
          TRY(wait());
          continue;
        } else if (n != LIBSSH2_ERROR_EAGAIN)
          input_closed = true;  // the command stopped reading
      } else if (!eof_sent && !input_closed) {
        int rc = libssh2_channel_send_eof(m_channel);
        if (rc == LIBSSH2_ERROR_EAGAIN && outbound_blocked()) {
          TRY(wait());
          continue;
        }
        if (rc != LIBSSH2_ERROR_EAGAIN)
          eof_sent = true, moved = true;
      }
      for (int stream : {0, SSH_EXTENDED_DATA_STDERR}) {
        for (;;) {
          auto n = libssh2_channel_read_ex(m_channel, stream, buf, sizeof buf);
          if (n > 0) {
            (stream == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
            moved = true;
            continue;
          }
          if (n == LIBSSH2_ERROR_EAGAIN && outbound_blocked()) {
            TRY(wait());
            continue;
          }
          if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
            return lost("read");
          break;
        }
      }
      if (libssh2_channel_eof(m_channel))
        return {};
      if (!moved)
        TRY(wait());
    }
  }

  Status finish(ExecResult& r) {
    int rc;
    while ((rc = libssh2_channel_close(m_channel)) == LIBSSH2_ERROR_EAGAIN)
      TRY(wait());
    while ((rc = libssh2_channel_wait_closed(m_channel)) == LIBSSH2_ERROR_EAGAIN)
      TRY(wait());
    r.exit_status = libssh2_channel_get_exit_status(m_channel);
    char* sig = nullptr;
    std::size_t sig_len = 0;
    libssh2_channel_get_exit_signal(m_channel, &sig, &sig_len, nullptr, nullptr, nullptr, nullptr);
    if (sig) {
      r.signal.assign(sig, sig_len);
      r.exit_status = -1;
      libssh2_free(m_ssh, sig);
    }
    while ((rc = libssh2_channel_free(m_channel)) == LIBSSH2_ERROR_EAGAIN)
      TRY(wait());
    m_channel = nullptr;
    return {};
  }

 private:
  LIBSSH2_SESSION* m_ssh;
  int m_socket;
  Clock::time_point m_deadline;
  std::string m_what;
  LIBSSH2_CHANNEL* m_channel = nullptr;
};

std::string exec_what(const std::string& command) {
  return "`" + command.substr(0, command.find(' ')) + "` on the pod";
}

Result<ExecResult> ssh_exec(SshSession& session,
                            const std::string& command,
                            std::string_view input,
                            std::chrono::milliseconds timeout) {
  ExecChannel channel(session, Clock::now() + timeout, exec_what(command));
  ExecResult r;
  TRY(channel.start(command));
  TRY(channel.pump(input, r));
  TRY(channel.finish(r));
  return r;
}

SshCommand::SshCommand(std::unique_ptr<ExecChannel> channel) : m_channel(std::move(channel)) {}
SshCommand::~SshCommand() = default;

Result<std::unique_ptr<SshCommand>> SshCommand::start(SshSession& session,
                                                      const std::string& command,
                                                      std::chrono::milliseconds timeout) {
  auto channel =
      std::make_unique<ExecChannel>(session, Clock::now() + timeout, exec_what(command));
  TRY(channel->start(command));
  libssh2_session_set_blocking(session.get(), 1);
  return std::unique_ptr<SshCommand>(new SshCommand(std::move(channel)));
}

Result<ExecResult> SshCommand::finish(std::string_view input, std::chrono::milliseconds timeout) {
  m_channel->set_deadline(Clock::now() + timeout);
  m_channel->set_blocking(false);
  ExecResult r;
  auto done = [&]() -> Status {
    TRY(m_channel->pump(input, r));
    return m_channel->finish(r);
  }();
  m_channel->set_blocking(true);
  if (!done)
    return fail(done.error());
  return r;
}

}  // namespace autopod::core
