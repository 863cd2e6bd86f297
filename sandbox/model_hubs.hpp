#pragma once
// Fakes of the Hugging Face Hub and of Civitai on loopback, as model-sources.md describes them
// (§1.3-§1.4, §2.3-§2.5), errors included, redirecting downloads to a StorageServer's signed URLs.
// They are as unkind as the real ones: a bad token fails public files, gated repos answer
// 401/403, a browser User-Agent gets an HTML login page from Civitai, 429 comes without
// Retry-After, and a flaky mode fails every other request with a 5xx.

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "sandbox/storage_server.hpp"

namespace autopod::sandbox {

struct HubRequest {
  std::string method;
  std::string target;
  std::string authorization;  // the header as received ("" when absent)
  std::string user_agent;
  int status = 0;
};

class HfFake {
 public:
  explicit HfFake(StorageServer& storage);
  ~HfFake();
  core::Status start();
  std::string url() const;

  // An LFS file (302 to storage with X-Linked-Etag/-Size) at `revision` (also reachable as
  // "main"); its bytes are put into the storage as well.
  void add_lfs_file(const std::string& repo, const std::string& path, const std::string& bytes,
                    const std::string& commit = "0d2ed55c441a20c20e09da4dc086097703f26b61");
  // A regular git file, answered by the hub itself: 200, or 206 to a Range.
  void add_git_file(const std::string& repo, const std::string& path, const std::string& bytes);
  void set_gated(const std::string& repo, std::set<std::string> granted_tokens);
  // A private repo: seen only with one of `tokens`; otherwise RepoNotFound, 401 to an anonymous
  // request and 404 to another token (model-sources.md §1.4: the Hub does not say which).
  void set_private(const std::string& repo, std::set<std::string> tokens);
  void set_tokens(std::set<std::string> valid_tokens);  // any other bearer gets 401
  void rename_repo(const std::string& old_repo, const std::string& new_repo);
  void rate_limit_next(int n);  // 429 with RateLimit r=0;t=1
  void set_flaky(bool every_other_request_500);
  std::vector<HubRequest> requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

struct CivitaiFile {
  std::string id;
  std::string name;
  std::string type = "Model";  // Model, VAE, Diffusion Model, ...
  bool primary = true;
  std::string bytes;           // put into the storage as "civitai-<id>"
  std::string format = "SafeTensor";
};

enum class CivitaiGate {
  open,
  login_required,      // 401 without a valid token
  downloads_disabled,  // 401 even with one
  early_access,        // 403 with a deadline
  no_access,           // 403
  archived,            // 410; the version's files are dropped
};

class CivitaiFake {
 public:
  explicit CivitaiFake(StorageServer& storage);
  ~CivitaiFake();
  core::Status start();
  std::string url() const;

  void add_version(const std::string& model_id, const std::string& version_id,
                   const std::string& model_type, std::vector<CivitaiFile> files,
                   CivitaiGate gate = CivitaiGate::open);
  void set_tokens(std::set<std::string> valid_tokens);
  void rate_limit_next(int n);  // 429 on the download endpoint, without Retry-After
  void rate_limit_lookups_next(int n);  // 429 on GET /api/v1/model-versions/by-hash, likewise
  // The version's images[0] (a preview), its bytes served by the storage at a plain URL.
  void add_image(const std::string& version_id, const std::string& bytes);
  void set_flaky(bool every_other_request_500);
  std::vector<HubRequest> requests() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace autopod::sandbox
