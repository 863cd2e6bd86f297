#include "core/ssh_key.hpp"

#include <unistd.h>

#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/process.hpp"

namespace autopod::core {
namespace {

std::string first_line(const std::string& s) {
  auto end = s.find_first_of("\r\n");
  return end == std::string::npos ? s : s.substr(0, end);
}

}  // namespace

Result<SshKey> ensure_ssh_key(const std::filesystem::path& private_key, bool create_if_missing) {
  auto pub_path = std::filesystem::path(private_key.string() + ".pub");
  std::error_code ec;
  if (!std::filesystem::exists(private_key, ec)) {
    if (!create_if_missing)
      return fail(ErrorCode::not_found, "ssh key " + private_key.string() + " does not exist",
                  "create it with ssh-keygen -t ed25519 -f " + private_key.string() +
                      " or remove ssh.key from config.yaml to let autopod make one");
    TRY(ensure_dir(private_key.parent_path()));
    // Generate under temp names, then rename: a crash never leaves a half-made pair.
    auto tmp = private_key.parent_path() /
               ("." + private_key.filename().string() + ".new." + std::to_string(::getpid()));
    std::filesystem::remove(tmp, ec);
    std::filesystem::remove(tmp.string() + ".pub", ec);
    TRY_ASSIGN(auto out, run_capture({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                      "autopod", "-f", tmp.string()}));
    if (out.exit_code != 0)
      return fail(ErrorCode::io, "ssh-keygen failed: " + first_line(out.err));
    std::filesystem::rename(tmp.string() + ".pub", pub_path, ec);
    if (!ec) std::filesystem::rename(tmp, private_key, ec);
    if (ec) return fail(ErrorCode::io, "cannot place the new key: " + ec.message());
    logger("core")->info("created ssh key {}", private_key.string());
  }
  auto pub = read_file(pub_path);
  std::string line;
  if (pub) {
    line = first_line(*pub);
  } else {
    TRY_ASSIGN(auto out, run_capture({"ssh-keygen", "-y", "-f", private_key.string()}));
    if (out.exit_code != 0)
      return fail(ErrorCode::invalid_argument,
                  "cannot read the public half of " + private_key.string() + ": " +
                      first_line(out.err),
                  "a key with a passphrase needs its .pub file beside it");
    line = first_line(out.out);
  }
  if (line.empty())
    return fail(ErrorCode::invalid_argument, pub_path.string() + " is empty");
  return SshKey{private_key, line};
}

}  // namespace autopod::core
