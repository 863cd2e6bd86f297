// The Civitai fake (see model_hubs.hpp): /api/v1 and /api/download as model-sources.md §2.3-§2.5.

#include <openssl/evp.h>

#include <mutex>

#include <nlohmann/json.hpp>

#include "core/text.hpp"
#include "sandbox/http_server.hpp"
#include "sandbox/model_hubs.hpp"

namespace autopod::sandbox {
namespace {

using nlohmann::json;

std::string sha256_upper(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += "0123456789ABCDEF"[digest[i] >> 4];
    out += "0123456789ABCDEF"[digest[i] & 15];
  }
  return out;
}

HttpReply json_reply(int status, json body) {
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "application/json";
  r.body = body.dump();
  return r;
}

struct Version {
  std::string model_id;
  std::string model_type;
  std::vector<CivitaiFile> files;
  CivitaiGate gate = CivitaiGate::open;
};

// Civitai's test (model-sources.md §0.7): any of these words in the User-Agent.
bool browser(const std::string& ua) {
  std::string lower = core::lowercase(ua);
  for (const char* word : {"mozilla", "chrome", "safari", "firefox", "opera", "edge"})
    if (lower.find(word) != std::string::npos) return true;
  return false;
}

// "/api/v1/models/123" with prefix "/api/v1/models/" -> "123"; empty unless all digits.
std::string id_after(const std::string& path, const std::string& prefix) {
  if (path.rfind(prefix, 0) != 0 || path.size() == prefix.size()) return {};
  std::string id = path.substr(prefix.size());
  for (char c : id)
    if (c < '0' || c > '9') return {};
  return id;
}

}  // namespace

struct CivitaiFake::Impl {
  explicit Impl(StorageServer& s) : storage(s), server([this](const HttpExchange& ex) { return handle(ex); }) {}
  StorageServer& storage;
  mutable std::mutex mutex;
  std::map<std::string, Version> versions;
  std::set<std::string> tokens;
  int rate_limited = 0;
  int lookups_limited = 0;
  std::set<std::string> images;  // version ids with an image "civitai-image-<vid>.png"
  bool flaky = false;
  int counter = 0;
  std::vector<HubRequest> log;
  HttpServer server;

  HttpReply handle(const HttpExchange& ex) {
    HttpReply r = answer(ex);
    std::lock_guard lock(mutex);
    auto auth = ex.headers.find("authorization");
    auto ua = ex.headers.find("user-agent");
    log.push_back({ex.method, ex.target, auth == ex.headers.end() ? "" : auth->second,
                   ua == ex.headers.end() ? "" : ua->second, r.status});
    return r;
  }

  json version_json(const std::string& vid, const Version& v) {
    json files = json::array();
    for (const auto& f : v.files)
      files.push_back({{"id", std::stoll(f.id)}, {"name", f.name}, {"type", f.type}, {"primary", f.primary},
                       {"sizeKB", static_cast<double>(f.bytes.size()) / 1024.0},
                       {"metadata", {{"format", f.format}, {"size", "pruned"}, {"fp", "fp16"}}},
                       {"hashes", {{"SHA256", sha256_upper(f.bytes)}, {"AutoV2", sha256_upper(f.bytes).substr(0, 10)}}},
                       {"downloadUrl", server.url() + "/api/download/models/" + vid + "?type=Model&format=SafeTensor"}});
    bool archived = v.gate == CivitaiGate::archived;
    json out = {{"id", std::stoll(vid)}, {"modelId", std::stoll(v.model_id)}, {"name", "v1.0"},
                {"baseModel", "SDXL 1.0"}, {"air", "urn:air:sdxl:" + core::lowercase(v.model_type) + ":civitai:" + v.model_id + "@" + vid},
                {"model", {{"name", "Model " + v.model_id}, {"type", v.model_type}, {"nsfw", false},
                           {"mode", archived ? json("Archived") : json(nullptr)}}}};
    if (!archived) out["files"] = files;
    out["images"] = json::array();
    if (images.count(vid))
      out["images"].push_back({{"url", storage.plain_url("civitai-image-" + vid + ".png")}, {"type", "image"}, {"nsfwLevel", 1}});
    return out;
  }

  HttpReply download(const std::string& vid, const std::string& query, const std::string& token,
                     bool is_browser) {
    auto it = versions.find(vid);
    if (it == versions.end()) return json_reply(404, {{"error", "File not found"}});
    const Version& v = it->second;
    bool authed = !token.empty() && tokens.count(token);
    HttpReply r;
    if (v.gate == CivitaiGate::login_required && !authed) {
      if (is_browser) {
        r.status = 307;
        r.headers["Location"] = "/login?reason=download-auth&returnUrl=/model-versions/" + vid;
        return r;
      }
      return json_reply(401, {{"error", "Unauthorized"}, {"message", "The creator of this asset requires you to be logged in to download it"}});
    }
    if (v.gate == CivitaiGate::downloads_disabled)
      return json_reply(401, {{"error", "Unauthorized"}, {"message", "The creator of this asset has disabled downloads on this file"}});
    if (v.gate == CivitaiGate::early_access) {
      if (is_browser) {
        r.status = 307;
        r.headers["Location"] = "/model-versions/" + vid;
        return r;
      }
      return json_reply(403, {{"error", "Early Access"}, {"deadline", "2026-12-24T00:00:00.000Z"},
                              {"message", "This asset is in Early Access. You can use Buzz access it now!"}});
    }
    if (v.gate == CivitaiGate::no_access) return json_reply(403, {{"error", "You do not have access to download this file"}});
    if (v.gate == CivitaiGate::archived) return json_reply(410, {{"error", "Model archived, not available for download"}});
    const CivitaiFile* chosen = nullptr;
    auto at = query.find("fileId=");
    for (const auto& f : v.files)
      if (at != std::string::npos ? query.substr(at + 7, query.find('&', at) - at - 7) == f.id : f.primary) chosen = &f;
    if (!chosen) return json_reply(404, {{"error", "File not found"}});
    r.status = 307;
    r.headers["Location"] = storage.signed_url("civitai-" + chosen->id);
    r.headers["Cache-Control"] = "no-store";
    return r;
  }

  // Any of a file's hashes, case-insensitive (§2.3); 404 when none matches.
  HttpReply by_hash(const std::string& hash) {
    if (lookups_limited > 0) {
      --lookups_limited;
      return json_reply(429, {{"error", "Too Many Requests"}});
    }
    std::string want = core::lowercase(hash);
    for (const auto& [vid, v] : versions)
      for (const auto& f : v.files) {
        std::string sha = core::lowercase(sha256_upper(f.bytes));
        if (want == sha || want == sha.substr(0, 10)) return json_reply(200, version_json(vid, v));
      }
    return json_reply(404, {{"error", "Model not found"}});
  }

  HttpReply answer(const HttpExchange& ex) {
    std::lock_guard lock(mutex);
    std::string ua = ex.headers.count("user-agent") ? ex.headers.at("user-agent") : "";
    bool is_browser = browser(ua);
    if (flaky && (counter++ % 2 == 0)) {
      HttpReply r = json_reply(500, {{"error", "Internal Server Error"}});
      if (is_browser) r.headers["Content-Type"] = "text/plain";
      return r;
    }
    if (ex.path == "/login" || ex.path.rfind("/model-versions/", 0) == 0) {
      HttpReply r;
      r.headers["Content-Type"] = "text/html; charset=utf-8";
      r.body = "<!DOCTYPE html><html><head><title>Sign in | Civitai</title></head><body>Sign in</body></html>";
      return r;
    }
    std::string token;
    if (auto a = ex.headers.find("authorization"); a != ex.headers.end() && a->second.rfind("Bearer ", 0) == 0)
      token = a->second.substr(7);
    std::string query = ex.target.find('?') == std::string::npos ? "" : ex.target.substr(ex.target.find('?') + 1);
    if (auto vid = id_after(ex.path, "/api/download/models/"); !vid.empty()) {
      if (rate_limited > 0) {
        --rate_limited;  // Cloudflare's 429: no Retry-After
        return json_reply(429, {{"error", "We've noticed an unusual amount of downloading from your account. Contact support@civitai.com or come back later."}});
      }
      return download(vid, query, token, is_browser);
    }
    if (!token.empty() && !tokens.count(token)) return json_reply(401, {{"error", "Unauthorized"}});
    if (ex.path.rfind("/api/v1/model-versions/by-hash/", 0) == 0) return by_hash(ex.path.substr(31));
    if (auto vid = id_after(ex.path, "/api/v1/model-versions/"); !vid.empty()) {
      auto it = versions.find(vid);
      if (it == versions.end()) return json_reply(404, {{"error", "Model not found"}});
      return json_reply(200, version_json(vid, it->second));
    }
    if (auto mid = id_after(ex.path, "/api/v1/models/"); !mid.empty()) {
      json list = json::array();
      std::string type;
      for (auto it = versions.rbegin(); it != versions.rend(); ++it)
        if (it->second.model_id == mid) list.push_back(version_json(it->first, it->second)), type = it->second.model_type;
      if (list.empty()) return json_reply(404, {{"error", "No model with id " + mid}});
      return json_reply(200, {{"id", std::stoll(mid)}, {"type", type}, {"modelVersions", list}});
    }
    return json_reply(404, {{"error", "Not found"}});
  }
};

CivitaiFake::CivitaiFake(StorageServer& storage) : m_impl(std::make_unique<Impl>(storage)) {}
CivitaiFake::~CivitaiFake() { m_impl->server.stop(); }
core::Status CivitaiFake::start() { return m_impl->server.start(); }
std::string CivitaiFake::url() const { return m_impl->server.url(); }

void CivitaiFake::add_version(const std::string& model_id, const std::string& version_id,
                              const std::string& model_type, std::vector<CivitaiFile> files,
                              CivitaiGate gate) {
  for (const auto& f : files)
    m_impl->storage.put("civitai-" + f.id, f.bytes, "attachment; filename=\"" + f.name + "\"");
  std::lock_guard lock(m_impl->mutex);
  m_impl->versions[version_id] = Version{model_id, model_type, std::move(files), gate};
}

void CivitaiFake::set_tokens(std::set<std::string> valid) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->tokens = std::move(valid);
}

void CivitaiFake::rate_limit_next(int n) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->rate_limited = n;
}

void CivitaiFake::rate_limit_lookups_next(int n) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->lookups_limited = n;
}

void CivitaiFake::add_image(const std::string& version_id, const std::string& bytes) {
  m_impl->storage.put("civitai-image-" + version_id + ".png", bytes);
  std::lock_guard lock(m_impl->mutex);
  m_impl->images.insert(version_id);
}

void CivitaiFake::set_flaky(bool flaky) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->flaky = flaky;
}

std::vector<HubRequest> CivitaiFake::requests() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->log;
}

}  // namespace autopod::sandbox
