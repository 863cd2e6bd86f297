#pragma once
// `models push`: one file from this machine onto the pod's models root over SFTP, resumable and
// sha256-verified on both ends, placed by an atomic rename with its placed-file record. Runs on
// a core::SshSession the caller connected (host key pinned as for tunnels). Never prints.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "core/result.hpp"
#include "core/ssh_session.hpp"

namespace autopod::models {

struct PushRequest {
  std::filesystem::path local;  // a regular file on this machine
  std::string root;             // the models root on the pod
  std::string folder;           // a ComfyUI folder key (folder_keys())
  std::string name;             // the file name on the pod; empty: the local file's
};

enum class PushPhase { checking, sending, verifying };

// Reported as the push goes: bytes of `total` done in `phase` (checking: the partial file's
// hash; sending: bytes acknowledged by the pod, resumed ones included).
struct PushProgress {
  PushPhase phase = PushPhase::sending;
  std::int64_t done = 0;
  std::int64_t total = 0;
};

struct PushResult {
  std::string path;  // where the file now is on the pod
  std::int64_t size = 0;
  std::string sha256;             // lowercase hex, the same on both ends
  std::int64_t resumed_from = 0;  // bytes of a partial file kept from an earlier push
  bool restarted = false;         // a partial file was there but its bytes differed: sent again
  bool already_there = false;     // the same bytes were at the destination: nothing sent
};

// The partial file's name beside the destination: ".NAME.autopod-part-SIZE" (SIZE in hex), so
// only a push of a file of the same size resumes it, and then only when its bytes hash the same.
std::string push_partial_name(const std::string& name, std::int64_t size);

// Sends `request.local` to ROOT/FOLDER/NAME. A partial file from an earlier push is kept when
// its size and sha256 (python3's hashlib, else sha256sum, on the pod over exec) match the local
// file's first bytes, else sent again; the whole file's sha256 is compared on both ends before
// the rename, each hashed while the bytes travel (here on a thread of its own; on the pod by a
// python3 follower on a second channel, else by hashing the file after the upload); then the
// record NAME.autopod.json (source "push:LOCAL_NAME") is written beside it.
// Errors: invalid_argument (a folder or name leaving the models root, a folder that is a symlink
// out of it, not a regular local file), not_found (no models root; neither python3 nor
// sha256sum on the pod), conflict (a different file already has the name), protocol (hashes
// differ: the partial file is removed), network/timeout (the link dropped: run again to resume).
core::Result<PushResult> push_file(core::SshSession& session,
                                   const PushRequest& request,
                                   const std::function<void(const PushProgress&)>& progress);

}  // namespace autopod::models
