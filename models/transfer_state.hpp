#pragma once
// Internal to models/: the record beside a partial download (what it is, which ranges are on
// disk, who writes it) and the claim that keeps two writers off one destination without relying
// on flock, which network volumes may ignore.

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace autopod::models {

struct Owner {
  std::string host;
  int pid = 0;
  std::int64_t start_ticks = 0;  // /proc/PID/stat field 22: tells a reused pid apart
  std::int64_t heartbeat = 0;    // unix seconds of the owner's last state write
};

// This process.
Owner current_owner();
// An owner on another host whose heartbeat is older is dead (the pod side's
// REMOTE_OWNER_STALE_SECS in models/pod/autopod_base.py is the same; a test holds them equal).
inline constexpr std::int64_t k_remote_owner_stale_secs = 120;
// Same host: the pid runs with the same start time. Other host: a heartbeat within
// k_remote_owner_stale_secs.
bool owner_alive(const Owner& owner);

struct PartState {
  std::string source;
  std::string partial;  // file name of the partial file, beside the destination
  std::int64_t size = -1;
  std::string sha256;
  std::string validator;
  std::int64_t chunk_bytes = 0;
  std::vector<bool> done;  // one per chunk
  Owner owner;

  // The same download: what a resume may continue.
  bool same_download(const PartState& other) const;
  std::int64_t done_bytes() const;
};

nlohmann::json to_json(const PartState& s);
PartState part_state_from_json(const nlohmann::json& j);

// "<dest>.autopod-part.json", created exclusively (link(2), atomic on NFS too). Holding one
// means this process alone writes the destination's partial file.
class Claim {
 public:
  // A new claim, or a dead owner's taken over (its last state in `previous`); conflict naming
  // the owner when a live process holds it.
  static core::Result<Claim> acquire(const std::filesystem::path& dest, PartState fresh,
                                     PartState* previous);
  Claim(Claim&& other) noexcept;
  Claim& operator=(Claim&&) = delete;
  ~Claim();

  core::Status save(PartState state);
  // Saves `state` with no owner and lets go: the partial file stays for the next run to resume.
  core::Status park(PartState state);
  // Removes the record (after the rename into place, or on cancel).
  void release();
  const std::filesystem::path& path() const { return m_path; }

 private:
  explicit Claim(std::filesystem::path path) : m_path(std::move(path)) {}
  std::filesystem::path m_path;
  bool m_held = false;
};

std::filesystem::path claim_path(const std::filesystem::path& dest);

}  // namespace autopod::models
