#pragma once
// The SSH key pair autopod authenticates with.

#include <filesystem>
#include <string>

#include "core/result.hpp"

namespace autopod::core {

struct SshKey {
  std::filesystem::path private_key;
  std::string public_key;  // one line: "ssh-ed25519 AAAA... comment"
};

// Loads the key at `private_key`; when it does not exist and `create_if_missing`, creates an
// ed25519 pair there with ssh-keygen (private 0600), atomically. A missing key that must
// not be created is not_found with a hint.
Result<SshKey> ensure_ssh_key(const std::filesystem::path& private_key, bool create_if_missing);

}  // namespace autopod::core
