// The Hugging Face Hub fake (see model_hubs.hpp): /resolve/ as model-sources.md §1.3-§1.4 says.

#include <openssl/evp.h>

#include <cstdio>
#include <mutex>

#include "core/url.hpp"
#include "sandbox/http_server.hpp"
#include "sandbox/model_hubs.hpp"

namespace autopod::sandbox {
namespace {

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += "0123456789abcdef"[digest[i] >> 4];
    out += "0123456789abcdef"[digest[i] & 15];
  }
  return out;
}

std::string decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

struct HfFile {
  bool lfs = true;
  std::string bytes;
  std::string sha256;
  std::string commit;
};

// A regular file's bytes as the Hub serves them itself: 200, or 206 with Content-Range for a
// "bytes=A-B" / "bytes=A-" Range (416 when it starts past the end).
HttpReply serve_range(const HttpExchange& ex, const std::string& bytes, HttpReply r) {
  auto range = ex.headers.find("range");
  long long first = 0, last = -1;
  if (range == ex.headers.end() ||
      std::sscanf(range->second.c_str(), "bytes=%lld-%lld", &first, &last) < 1) {
    r.status = 200;
    r.body = bytes;
    return r;
  }
  auto size = static_cast<long long>(bytes.size());
  if (first >= size) {
    r.status = 416;
    r.headers["Content-Range"] = "bytes */" + std::to_string(size);
    return r;
  }
  if (last < 0 || last >= size) last = size - 1;
  r.status = 206;
  r.headers["Content-Range"] = "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                               std::to_string(size);
  r.body = bytes.substr(static_cast<std::size_t>(first), static_cast<std::size_t>(last - first + 1));
  return r;
}

HttpReply hub_error(int status, const std::string& code, const std::string& message) {
  HttpReply r;
  r.status = status;
  if (!code.empty()) r.headers["X-Error-Code"] = code;
  r.headers["X-Error-Message"] = message;
  r.headers["Content-Type"] = "application/json";
  r.body = "{\"error\":\"" + message + "\"}";
  return r;
}

}  // namespace

struct HfFake::Impl {
  explicit Impl(StorageServer& s) : storage(s), server([this](const HttpExchange& ex) { return handle(ex); }) {}
  StorageServer& storage;
  mutable std::mutex mutex;
  std::map<std::string, std::map<std::string, HfFile>> repos;  // repo -> path -> file
  std::map<std::string, std::set<std::string>> gated;
  std::map<std::string, std::set<std::string>> private_repos;  // repo -> tokens that see it
  std::map<std::string, std::string> renamed;
  std::set<std::string> tokens;
  int rate_limited = 0;
  bool flaky = false;
  int counter = 0;
  std::vector<HubRequest> log;
  HttpServer server;

  HttpReply handle(const HttpExchange& ex) {
    HttpReply r = answer(ex);
    if (ex.method == "HEAD") r.body.clear();
    std::lock_guard lock(mutex);
    auto auth = ex.headers.find("authorization");
    auto ua = ex.headers.find("user-agent");
    log.push_back({ex.method, ex.target, auth == ex.headers.end() ? "" : auth->second,
                   ua == ex.headers.end() ? "" : ua->second, r.status});
    return r;
  }

  HttpReply answer(const HttpExchange& ex) {
    std::lock_guard lock(mutex);
    if (flaky && (counter++ % 2 == 0)) return hub_error(500, "", "Internal Error");
    if (rate_limited > 0) {
      --rate_limited;
      HttpReply r = hub_error(429, "", "Too Many Requests");
      r.headers["RateLimit"] = "\"resolvers\";r=0;t=1";
      r.headers["RateLimit-Policy"] = "\"fixed window\";\"resolvers\";q=5000;w=300";
      return r;
    }
    std::string token;
    if (auto a = ex.headers.find("authorization"); a != ex.headers.end() && a->second.rfind("Bearer ", 0) == 0)
      token = a->second.substr(7);
    if (!token.empty() && !tokens.count(token))
      return hub_error(401, "", "Invalid credentials in Authorization header");
    // /[datasets/|spaces/]owner/name/resolve/REV/PATH
    std::string p = ex.path.substr(1);
    std::string prefix;
    if (p.rfind("datasets/", 0) == 0 || p.rfind("spaces/", 0) == 0) {
      prefix = p.substr(0, p.find('/') + 1);
      p = p.substr(prefix.size());
    }
    auto second = p.find('/', p.find('/') + 1);
    if (second == std::string::npos || p.compare(second, 9, "/resolve/") != 0)
      return hub_error(404, "", "Not Found");
    std::string repo = prefix + p.substr(0, second);
    std::string rest = p.substr(second + 9);
    std::string rev = decode(rest.substr(0, rest.find('/')));
    std::string path = decode(rest.substr(rest.find('/') + 1));
    if (auto it = renamed.find(repo); it != renamed.end()) {
      HttpReply r;
      r.status = 307;
      r.headers["Location"] = "/" + it->second + "/resolve/" + rest;  // relative: same host
      return r;
    }
    auto repo_it = repos.find(repo);
    auto hidden = private_repos.find(repo);
    if (repo_it == repos.end() || (hidden != private_repos.end() && !hidden->second.count(token)))
      return token.empty() ? hub_error(401, "RepoNotFound", "Repository not found")
                           : hub_error(404, "RepoNotFound", "Repository not found");
    if (auto g = gated.find(repo); g != gated.end()) {
      if (token.empty())
        return hub_error(401, "GatedRepo", "Access to model " + repo + " is restricted. You must have access to it and be authenticated to access it. Please log in.");
      if (!g->second.count(token))
        return hub_error(403, "GatedRepo", "Access to model " + repo + " is restricted and you are not in the authorized list. Visit https://huggingface.co/" + repo + " to ask for access.");
    }
    auto file_it = repo_it->second.find(path);
    bool rev_known = rev == "main" || std::any_of(repo_it->second.begin(), repo_it->second.end(),
                                                  [&](const auto& f) { return f.second.commit == rev; });
    if (!rev_known) return hub_error(404, "RevisionNotFound", "Invalid rev id: " + rev);
    if (file_it == repo_it->second.end()) return hub_error(404, "EntryNotFound", path + " does not exist");
    const HfFile& f = file_it->second;
    HttpReply r;
    r.headers["X-Repo-Commit"] = f.commit;
    r.headers["Accept-Ranges"] = "bytes";
    if (!f.lfs) {
      r.headers["ETag"] = "\"" + sha256_hex(f.bytes).substr(0, 40) + "\"";
      return serve_range(ex, f.bytes, std::move(r));
    }
    r.status = 302;
    r.headers["X-Linked-Size"] = std::to_string(f.bytes.size());
    r.headers["X-Linked-ETag"] = "\"" + f.sha256 + "\"";
    r.headers["ETag"] = "\"" + f.sha256 + "\"";
    r.headers["Location"] = storage.signed_url("hf-" + f.sha256);
    r.body = "Found. Redirecting to " + r.headers["Location"];
    return r;
  }
};

HfFake::HfFake(StorageServer& storage) : m_impl(std::make_unique<Impl>(storage)) {}
HfFake::~HfFake() { m_impl->server.stop(); }
core::Status HfFake::start() { return m_impl->server.start(); }
std::string HfFake::url() const { return m_impl->server.url(); }

void HfFake::add_lfs_file(const std::string& repo, const std::string& path, const std::string& bytes,
                          const std::string& commit) {
  std::string sha = sha256_hex(bytes);
  m_impl->storage.put("hf-" + sha, bytes);
  std::lock_guard lock(m_impl->mutex);
  m_impl->repos[repo][path] = HfFile{true, bytes, sha, commit};
}

void HfFake::add_git_file(const std::string& repo, const std::string& path, const std::string& bytes) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->repos[repo][path] = HfFile{false, bytes, sha256_hex(bytes), "0d2ed55c441a20c20e09da4dc086097703f26b61"};
}

void HfFake::set_gated(const std::string& repo, std::set<std::string> granted) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->gated[repo] = std::move(granted);
}

void HfFake::set_private(const std::string& repo, std::set<std::string> tokens) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->private_repos[repo] = std::move(tokens);
}

void HfFake::set_tokens(std::set<std::string> valid) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->tokens = std::move(valid);
}

void HfFake::rename_repo(const std::string& from, const std::string& to) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->renamed[from] = to;
}

void HfFake::rate_limit_next(int n) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->rate_limited = n;
}

void HfFake::set_flaky(bool flaky) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->flaky = flaky;
}

std::vector<HubRequest> HfFake::requests() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->log;
}

}  // namespace autopod::sandbox
