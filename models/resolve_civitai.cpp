// Civitai: the model-version API for name, size, SHA256 and type, then the download endpoint's
// redirect to signed storage, resolved once by hand (model-sources.md §2.3-§2.7).

#include <nlohmann/json.hpp>

#include <cstring>

#include "core/text.hpp"
#include "core/url.hpp"
#include "models/internal.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

std::string json_text(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  return it->is_string() ? it->get<std::string>() : it->dump();
}

core::Error civitai_error(const core::HttpResponse& r, const std::string& what,
                          const std::string& vid) {
  json body = json::parse(r.body, nullptr, false);
  std::string error = body.is_object() ? json_text(body, "error") : "";
  std::string message = body.is_object() ? json_text(body, "message") : "";
  core::Error e = core::make_error(ErrorCode::remote, "civitai answered http " +
                                                          std::to_string(r.status) + " for " + what);
  e.http_status = r.status;
  e.retry_after_secs = retry_after_secs(r);
  if (r.status == 401 && message.find("disabled downloads") != std::string::npos) {
    e.code = ErrorCode::auth;
    e.message = "the creator of civitai version " + vid + " has disabled downloads";
    e.hint = "a token does not help; pick another version or model";
  } else if (r.status == 401) {
    e.code = ErrorCode::auth;
    e.message = "civitai requires a login to download version " + vid;
    e.hint = "create an API key at civitai.com/user/account and set CIVITAI_API_TOKEN";
  } else if (r.status == 403 && error == "Early Access") {
    e.code = ErrorCode::auth;
    std::string deadline = body.is_object() ? json_text(body, "deadline") : "";
    e.message = "civitai version " + vid + " is in early access until " +
                (deadline.empty() ? "an unknown date" : deadline);
    e.hint = "buy early access on its page, or sync again after " +
             (deadline.empty() ? "the early-access period" : deadline);
  } else if (r.status == 403) {
    e.code = ErrorCode::auth;
    e.message = "civitai refused the download of version " + vid + ": " +
                (error.empty() ? "forbidden" : error);
    e.hint = "check that your account (CIVITAI_API_TOKEN) has access to this model";
  } else if (r.status == 404) {
    e.code = ErrorCode::not_found;
    e.message = "civitai has no " + what + (error.empty() ? "" : " (" + error + ")");
    e.hint = "check the id on its page; a file selector that matches no file also gives 404";
  } else if (r.status == 410) {
    e.code = ErrorCode::not_found;
    e.message = "civitai version " + vid + " is archived and can no longer be downloaded";
    e.hint = "the creator or moderators archived it; look for a mirror or another version";
  } else if (r.status == 429) {
    e.code = ErrorCode::rate_limited;
    e.message = "civitai rate-limited downloads of " + what;
    e.hint = "wait a few minutes and sync again (civitai counts downloads per account or IP)";
    // No Retry-After (Cloudflare's usual 429): the policy's exponential backoff applies.
  } else if (r.status == 400) {
    e.code = ErrorCode::invalid_argument;
    e.message = "civitai refused the request for " + what + ": " + error;
  }
  return e;
}

core::Result<core::HttpResponse> classify_api(core::HttpResponse r, const std::string& what,
                                              const std::string& vid) {
  if (r.status < 400) {
    std::string type = core::lowercase(r.header("content-type"));
    if (type.find("text/html") != std::string::npos)
      return fail(ErrorCode::protocol, "civitai answered an HTML page for " + what,
                  "autopod's User-Agent must not look like a browser; check CIVITAI_ENDPOINT");
    return r;
  }
  return fail(civitai_error(r, what, vid));
}

core::Result<json> get_json(core::HttpTransport& http, core::Clock& clock,
                            const core::RetryPolicy& policy, const Endpoints& ep,
                            const std::string& path, const std::string& what,
                            const std::string& vid) {
  core::HttpRequest req;
  req.url = ep.civitai + path;
  req.headers = {{"User-Agent", ep.user_agent}, {"Accept", "application/json"}};
  if (!ep.civitai_token.empty())
    req.headers.push_back({"Authorization", "Bearer " + ep.civitai_token});
  TRY_ASSIGN(auto r, send_retrying(http, clock, policy, req,
                                   [&](core::HttpResponse x) { return classify_api(std::move(x), what, vid); }));
  json doc = json::parse(r.body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return fail(ErrorCode::protocol, "civitai answered something that is not JSON for " + what);
  return doc;
}

// The file the manifest means: pinned id, else a type/format match, else the primary one.
core::Result<json> pick_file(const json& version, const ManifestEntry& entry, const std::string& vid) {
  const json files = version.value("files", json::array());
  std::string want = !entry.source.file_id.empty() ? entry.source.file_id : entry.file;
  // A download URL's ?type= or ?format= selects like `file:` does.
  for (const char* key : {"type=", "format="}) {
    auto at = entry.source.selectors.find(key);
    if (want.empty() && at != std::string::npos)
      want = percent_decode(entry.source.selectors.substr(at + std::strlen(key)).substr(0, entry.source.selectors.find('&', at) - at - std::strlen(key)));
  }
  for (const auto& f : files) {
    if (want.empty() ? f.value("primary", false)
                     : (json_text(f, "id") == want || core::lowercase(f.value("type", "")) == core::lowercase(want) ||
                        core::lowercase(json_text(f.value("metadata", json::object()), "format")) == core::lowercase(want)))
      return f;
  }
  if (want.empty() && !files.empty()) return files.front();
  std::string names;
  for (const auto& f : files) names += (names.empty() ? "" : ", ") + json_text(f, "id") + " (" + f.value("type", "") + ")";
  return fail(ErrorCode::not_found, "civitai version " + vid + " has no file matching '" + want + "'",
              names.empty() ? "the version lists no files" : "its files: " + names);
}

}  // namespace

core::Result<ResolvedFile> resolve_civitai_version(core::HttpTransport& http, core::Clock& clock,
                                                   const core::RetryPolicy& policy,
                                                   const Endpoints& ep, const ManifestEntry& entry) {
  const Source& s = entry.source;
  std::string vid = s.version_id;
  if (vid.empty()) {
    TRY_ASSIGN(auto model, get_json(http, clock, policy, ep, "/api/v1/models/" + s.model_id,
                                    "model " + s.model_id, ""));
    auto versions = model.value("modelVersions", json::array());
    if (versions.empty())
      return fail(ErrorCode::not_found, "civitai model " + s.model_id + " has no versions");
    vid = json_text(versions.front(), "id");
  }
  TRY_ASSIGN(auto version, get_json(http, clock, policy, ep, "/api/v1/model-versions/" + vid,
                                    "version " + vid, vid));
  json model = version.value("model", json::object());
  if (json_text(model, "mode") == "Archived" || json_text(model, "mode") == "TakenDown")
    return fail(ErrorCode::not_found, "civitai version " + vid + " is " + core::lowercase(json_text(model, "mode")) +
                                          " and can no longer be downloaded",
                "look for a mirror or another version");
  TRY_ASSIGN(auto file, pick_file(version, entry, vid));
  ResolvedFile f;
  f.source = s.text;
  f.revision = vid;
  f.sha256 = core::lowercase(json_text(file.value("hashes", json::object()), "SHA256"));
  f.folder = entry.folder.empty() ? civitai_folder(json_text(model, "type"), json_text(file, "type")) : entry.folder;
  if (f.folder.empty())
    return fail(ErrorCode::invalid_argument,
                entry.where + ": civitai type '" + json_text(model, "type") + "' has no ComfyUI folder",
                "add 'folder:' to the entry");
  f.name = entry.name.empty() ? json_text(file, "name") : entry.name;
  TRY(check_placement(f.folder, f.name));
  // The download endpoint answers 307 to signed storage; the token must stay on this request.
  core::HttpRequest req;
  req.url = ep.civitai + "/api/download/models/" + vid + "?fileId=" + core::url_encode(json_text(file, "id"));
  req.headers = {{"User-Agent", ep.user_agent}};
  if (!ep.civitai_token.empty()) req.headers.push_back({"Authorization", "Bearer " + ep.civitai_token});
  std::string what = "the download of version " + vid;
  TRY_ASSIGN(auto r, send_retrying(http, clock, policy, req,
                                   [&](core::HttpResponse x) { return classify_api(std::move(x), what, vid); }));
  std::string location = r.header("location");
  if (r.status < 300 || r.status >= 400 || location.empty())
    return fail(ErrorCode::protocol, "civitai did not redirect " + what + " to storage (http " +
                                         std::to_string(r.status) + ")",
                "report it; the download endpoint normally answers 307");
  if (location.find("://") == std::string::npos) {
    auto base = core::parse_url(req.url);
    location = (base ? base->origin() : ep.civitai) + location;
  }
  TRY_ASSIGN(auto probe, probe_storage(http, clock, policy, location, ep.user_agent,
                                       "civitai storage for version " + vid));
  f.url = probe.url;
  f.origin = req.url;
  f.auth = ep.civitai_token.empty() ? "" : "civitai";
  f.size = probe.size;  // sizeKB is sometimes wrong (Model-Manager PR #170)
  f.ranges = probe.ranges;
  f.validator = probe.validator;
  if (!entry.sha256.empty()) f.sha256 = entry.sha256;
  return f;
}

core::Result<ResolvedFile> resolve_civitai(core::HttpTransport& http, core::Clock& clock,
                                           const core::RetryPolicy& policy, const Endpoints& ep,
                                           const ManifestEntry& entry) {
  try {
    return resolve_civitai_version(http, clock, policy, ep, entry);
  } catch (const json::exception& e) {
    return fail(ErrorCode::protocol, "civitai answered JSON of an unexpected shape: " + std::string(e.what()),
                "report it with the version id");
  }
}

std::string civitai_folder(const std::string& model_type, const std::string& file_type) {
  static const std::pair<const char*, const char*> k_files[] = {
      {"VAE", "vae"}, {"Text Encoder", "text_encoders"}, {"CLIPVision", "clip_vision"},
      {"Vision Encoder", "clip_vision"}, {"Diffusion Model", "diffusion_models"},
      {"UNet", "diffusion_models"}, {"ControlNet", "controlnet"}, {"Upscaler", "upscale_models"},
      {"Negative", "embeddings"}};
  for (const auto& [type, folder] : k_files)
    if (file_type == type) return folder;
  static const std::pair<const char*, const char*> k_models[] = {
      {"Checkpoint", "checkpoints"}, {"LORA", "loras"}, {"LoCon", "loras"}, {"DoRA", "loras"},
      {"TextualInversion", "embeddings"}, {"Hypernetwork", "hypernetworks"}, {"VAE", "vae"},
      {"Controlnet", "controlnet"}, {"Upscaler", "upscale_models"},
      {"MotionModule", "animatediff_models"}};
  for (const auto& [type, folder] : k_models)
    if (model_type == type) return folder;
  return {};
}

}  // namespace autopod::models
