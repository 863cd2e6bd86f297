#pragma once
// Where a direct SSH connection (one that can forward ports) reaches a pod, and the key to log
// in with. The one endpoint type from providers down to the tunnel daemon.

#include <filesystem>
#include <string>

namespace autopod::core {

struct SshEndpoint {
  std::string host;
  int port = 22;
  std::string user = "root";
  std::filesystem::path key;  // private key file; empty: ssh-agent

  bool operator==(const SshEndpoint&) const = default;
};

}  // namespace autopod::core
