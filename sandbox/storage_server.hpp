#pragma once
// A fake of the signed object storage that Hugging Face and Civitai redirect to (S3, R2, B2,
// CloudFront), on loopback: full Range support (206 + Content-Range, If-Range, 416), a
// per-connection rate cap, signed URLs that expire, and a refusal of any request that carries
// Authorization, as real storage answers one that has both a signature and a token.
// Faults for tests: a cut at a fraction of the object, wrong bytes, a 200 to a Range, status
// bursts (429 without Retry-After, 503), a stalled body, a lying Content-Length.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace autopod::sandbox {

struct StorageOptions {
  std::int64_t bytes_per_sec_per_connection = 0;  // 0: uncapped
  std::chrono::milliseconds delay{0};             // before each answer
  bool require_signature = true;                  // unsigned /o/NAME URLs are refused
};

struct StorageFaults {
  double cut_at = 0;            // close the connection when a body crosses this fraction...
  int cuts = 0;                 // ...this many times
  bool wrong_bytes = false;     // serve one flipped byte in the middle of each object
  int wrong_bodies = 0;         // ...or only in this many bodies that hold it, then true bytes
  int ignore_range = 0;         // answer this many Range requests with 200 and the whole body
  int status_burst = 0;         // answer this many requests with burst_status instead
  int burst_status = 503;       // 429 comes without Retry-After, like Cloudflare's
  std::chrono::milliseconds stall{0};  // after half a body, send nothing for this long...
  int stalls = 0;                      // ...this many times
  int lying_length = 0;         // announce more bytes than are sent, then close, this many times
};

struct StorageRequest {
  std::string method;
  std::string target;
  std::string range;
  std::string if_range;
  bool authorization = false;
  int status = 0;
};

class StorageServer {
 public:
  explicit StorageServer(StorageOptions options = {});
  ~StorageServer();
  StorageServer(const StorageServer&) = delete;
  StorageServer& operator=(const StorageServer&) = delete;

  core::Status start(const std::string& address = "127.0.0.1", int port = 0);
  void stop();
  std::string url() const;

  // An object held in memory, or read from a file (a sparse 1 GiB file for the benchmark).
  void put(const std::string& name, std::string bytes, std::string content_disposition = {},
           std::string content_type = "application/octet-stream");
  void put_file(const std::string& name, const std::filesystem::path& path);
  // An S3-style URL signed for `ttl`, with response-content-disposition for the name.
  std::string signed_url(const std::string& name, std::chrono::seconds ttl = std::chrono::seconds(300)) const;
  // An unsigned URL (served only when require_signature is false).
  std::string plain_url(const std::string& name) const;
  // Every URL signed so far expires now: a signature expiring in the middle of a download.
  void expire_signatures();
  std::string etag(const std::string& name) const;

  void set_faults(StorageFaults faults);
  void set_rate(std::int64_t bytes_per_sec_per_connection);
  std::vector<StorageRequest> requests() const;
  std::int64_t bytes_sent() const;
  int authorization_seen() const;
  void clear_log();

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace autopod::sandbox
