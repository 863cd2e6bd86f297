#pragma once
// A private OpenSSH sshd on 127.0.0.1 with its own config, host key and authorized_keys in a
// directory of its own: the SSH end of sandbox pods, and of every test that needs a real one.

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace autopod::sandbox {

class SshdHarness {
 public:
  // Writes the config and a fresh ed25519 host key under `dir` (created if missing), starts
  // `sshd -D -e` and returns once sshd has said it is listening: no sleeps, no polling.
  // Fails naming what is missing when sshd or ssh-keygen are not installed.
  static core::Result<std::unique_ptr<SshdHarness>> start(const std::filesystem::path& dir);
  ~SshdHarness();  // SIGTERM, then waits for sshd to exit
  SshdHarness(const SshdHarness&) = delete;
  SshdHarness& operator=(const SshdHarness&) = delete;

  int port() const { return m_port; }
  pid_t pid() const { return m_pid; }
  const std::string& user() const { return m_user; }  // the user sshd logs in (this process's)
  const std::filesystem::path& dir() const { return m_dir; }
  std::filesystem::path authorized_keys() const { return m_dir / "authorized_keys"; }
  std::filesystem::path host_public_key() const { return m_dir / "host_ed25519.pub"; }
  std::filesystem::path log_file() const { return m_dir / "sshd.log"; }

  // Appends a public key line to authorized_keys.
  core::Status authorize(const std::string& public_key_line);

  // The OpenSSH client's argv up to and including "USER@127.0.0.1" for this sshd with the private
  // key `key`: unattended (BatchMode), that key only, this throwaway host key not checked or
  // remembered. Append the remote command.
  std::vector<std::string> ssh_argv(const std::filesystem::path& key) const;

 private:
  SshdHarness() = default;
  struct Drain;
  std::filesystem::path m_dir;
  int m_port = 0;
  pid_t m_pid = -1;
  std::string m_user;
  std::unique_ptr<Drain> m_drain;
};

}  // namespace autopod::sandbox
