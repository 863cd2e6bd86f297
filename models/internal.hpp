#pragma once
// Internal to models/: helpers shared by the resolvers, the transfer engine and the plan.

#include <openssl/evp.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/http.hpp"
#include "core/result.hpp"
#include "core/retry.hpp"
#include "models/models.hpp"

namespace autopod::models {

std::string percent_decode(const std::string& s);

// The file name a Content-Disposition header gives (RFC 6266 filename=, RFC 5987 filename*=
// preferred), reduced to its last path component; empty when there is none or it is unsafe.
std::string content_disposition_name(const std::string& header);

// The last path component of a URL's path, percent-decoded; empty when none.
std::string url_file_name(const std::string& url);

// "…": an ETag without W/ and quotes.
std::string strip_etag(std::string etag);

// True when both URLs have the same scheme, host (case-insensitive) and port: the only case in
// which a source's token may go with a request (model-sources.md §0.4). False when either is
// unparsable.
bool same_origin(const std::string& a, const std::string& b);

// "bytes A-B/T" -> A, B, T (T = -1 for "*"); false when malformed.
bool parse_content_range(const std::string& value, std::int64_t& first, std::int64_t& last,
                         std::int64_t& total);

// Sends `request` with retries: `classify` turns an answer into a value or an Error (a
// retryable one for 429/5xx, with retry_after_secs from Retry-After), and with_retry backs off.
using Classifier = std::function<core::Result<core::HttpResponse>(core::HttpResponse)>;
core::Result<core::HttpResponse> send_retrying(core::HttpTransport& http, core::Clock& clock,
                                               const core::RetryPolicy& policy,
                                               const core::HttpRequest& request,
                                               const Classifier& classify);

// Seconds from a Retry-After header (delta form), -1 when absent or a date.
int retry_after_secs(const core::HttpResponse& response);

// What a storage URL answers to GET Range: bytes=0-0 (and a HEAD when it ignores the Range).
struct Probe {
  std::string url;  // after following redirects (without credentials)
  std::int64_t size = -1;
  bool ranges = false;
  std::string validator;
  std::string content_type;
  std::string disposition_name;
};

// Follows up to 10 redirects by hand (no credentials are ever sent). Refuses an HTML answer
// where a model was expected; maps 403/404/410/5xx to errors that name `what`.
core::Result<Probe> probe_storage(core::HttpTransport& http, core::Clock& clock,
                                  const core::RetryPolicy& policy, const std::string& url,
                                  const std::string& user_agent, const std::string& what);

core::Result<ResolvedFile> resolve_hf(core::HttpTransport& http, core::Clock& clock,
                                      const core::RetryPolicy& policy, const Endpoints& endpoints,
                                      const ManifestEntry& entry);
core::Result<ResolvedFile> resolve_civitai(core::HttpTransport& http, core::Clock& clock,
                                           const core::RetryPolicy& policy,
                                           const Endpoints& endpoints, const ManifestEntry& entry);
core::Result<ResolvedFile> resolve_url(core::HttpTransport& http, core::Clock& clock,
                                       const core::RetryPolicy& policy, const Endpoints& endpoints,
                                       const ManifestEntry& entry);

// Civitai model type and file type to a folder key (model-sources.md §2.7); empty: no folder.
std::string civitai_folder(const std::string& model_type, const std::string& file_type);

// Incremental SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t n);
  std::string hex();  // finishes; call once
  Sha256 copy() const;  // the state so far, to finish one branch and go on with the other

 private:
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> m_ctx;
};

// A Sha256 fed on a thread of its own, so hashing what is sent costs the sending thread one
// copy instead of the hash: update() queues a copy of the bytes (at most 16 MiB waiting; it
// blocks while the queue is full). Not shared between threads: one feeder.
class Sha256Worker {
 public:
  explicit Sha256Worker(Sha256 start);
  ~Sha256Worker();  // joins the thread
  Sha256Worker(const Sha256Worker&) = delete;
  Sha256Worker& operator=(const Sha256Worker&) = delete;
  void update(const void* data, std::size_t n);
  std::string hex();  // waits for what is queued, then finishes; call once

 private:
  void run();
  Sha256 m_sha;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::deque<std::string> m_blocks;
  std::size_t m_queued_bytes = 0;
  bool m_closed = false;
  std::thread m_thread;
};

}  // namespace autopod::models
