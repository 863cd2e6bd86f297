#pragma once
// One authenticated libssh2 (1.10) session to a pod: TCP connect with kernel liveness, host key
// pinned in AUTOPOD_HOME/known_hosts, key or ssh-agent authentication. The one SSH layer of
// tunnel/ (which drives it non-blocking in its poll loop) and models/ (exec and SFTP, blocking).
// Facts: shared/reference/libssh2-tunnels.md §1 and §4.

#include <libssh2.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "core/ssh_endpoint.hpp"

namespace autopod::core {

struct SshTarget {
  SshEndpoint endpoint;         // host, port, user, key (empty: use ssh-agent)
  std::filesystem::path known_hosts;  // pinned host keys (trust on first use)
  std::chrono::milliseconds timeout{15000};
};

// The key type of a private key file ("ssh-ed25519", "ssh-rsa", ...), read without the
// passphrase: OpenSSH keys carry their public half in clear; PEM says it in its armor line.
Result<std::string> private_key_type(const std::filesystem::path& key);

// Lets another thread stop a SshSession::connect() in progress: cancel() shuts its socket
// down, so the blocking TCP connect, handshake or authentication fails at once (network).
class ConnectCancel {
 public:
  void cancel();

 private:
  friend class SshSession;
  friend Result<int> tcp_connect(const SshTarget& t, ConnectCancel* cancel);
  bool adopt(int fd);  // false when cancelled already
  void release();      // before the socket is closed or handed over
  std::mutex m_mutex;
  int m_fd = -1;
  bool m_cancelled = false;
};

// Owns a connected, authenticated session and its socket; frees both on destruction.
class SshSession {
 public:
  // TCP connect, handshake (preferring ed25519 host keys), host key check against
  // known_hosts (unknown: pinned; changed: auth error saying how to reset), authentication.
  // Errors: network (unreachable), auth (refused key, changed host key), invalid_argument
  // (RSA key, which libssh2 1.10 can only sign with SHA-1).
  // `cancel`, when given, must outlive the call.
  static Result<std::unique_ptr<SshSession>> connect(const SshTarget& target,
                                                           ConnectCancel* cancel = nullptr);
  ~SshSession();
  SshSession(const SshSession&) = delete;
  SshSession& operator=(const SshSession&) = delete;

  LIBSSH2_SESSION* get() const { return m_session; }
  int socket() const { return m_socket; }
  // "SHA256:..." of the server's host key.
  const std::string& fingerprint() const { return m_fingerprint; }
  // Bytes libssh2 may read from the socket until the next call. libssh2 1.10 reads everything
  // the socket holds into its packet list on every channel read; a budget per loop pass keeps
  // that list (memory) small while we drain it a packet at a time. Unlimited by default.
  void set_recv_budget(std::size_t bytes) { m_recv_budget = bytes; }

 private:
  SshSession() = default;
  static ssize_t budgeted_recv(libssh2_socket_t fd, void* buffer, size_t length, int flags,
                               void** abstract);
  std::size_t m_recv_budget = SIZE_MAX;
  ConnectCancel* m_cancel = nullptr;  // while connect() runs
  LIBSSH2_SESSION* m_session = nullptr;
  int m_socket = -1;
  std::string m_fingerprint;
};

// What a command run over exec printed and how it ended.
struct ExecResult {
  int exit_status = -1;  // the command's exit status; -1 when it was killed by a signal
  std::string signal;    // "TERM", "KILL", ... when it was killed; empty otherwise
  std::string out;       // everything it wrote on stdout
  std::string err;       // and on stderr
};

// Runs `command` through the server's shell for the session's user on a new channel, with `input`
// written to its stdin and then EOF, collecting stdout and stderr until it exits. Secrets go in
// `input`, never in `command` (the server's process list shows it). At most `timeout` in all:
// timeout then, with the channel closed. Not while a tunnel poll loop drives the session; the
// session is left in blocking mode. Errors: network (the session broke), remote (the server
// refused the channel or the exec), timeout. A non-zero exit status is not an error. After a
// timeout or a network error the session may hold a half-sent packet: drop it, connect again.
Result<ExecResult> ssh_exec(SshSession& session, const std::string& command, std::string_view input,
                            std::chrono::milliseconds timeout);

class ExecChannel;

// A command started on its own exec channel that runs on the pod while the caller goes on using
// the session in blocking mode (SFTP, ssh_exec): what it prints meanwhile waits in libssh2's
// packet list (up to the channel's 2 MiB window), so it should print little until its stdin
// ends. Dropped without finish(), its channel is freed (sshd then closes the command's stdin).
class SshCommand {
 public:
  // Starts `command` as ssh_exec does, within `timeout`; leaves the session in blocking mode.
  // Errors: network (the session broke), remote (the server refused the channel or the exec),
  // timeout.
  static Result<std::unique_ptr<SshCommand>> start(SshSession& session,
                                                   const std::string& command,
                                                   std::chrono::milliseconds timeout);
  ~SshCommand();
  SshCommand(const SshCommand&) = delete;
  SshCommand& operator=(const SshCommand&) = delete;
  // Writes `input` then EOF on its stdin and collects stdout, stderr and its exit status, at
  // most `timeout` from now. Errors as ssh_exec's; call once.
  Result<ExecResult> finish(std::string_view input, std::chrono::milliseconds timeout);

 private:
  explicit SshCommand(std::unique_ptr<ExecChannel> channel);
  std::unique_ptr<ExecChannel> m_channel;
};

// libssh2's last error for the session as text ("message [code]").
std::string ssh_error(LIBSSH2_SESSION* session);

}  // namespace autopod::core
