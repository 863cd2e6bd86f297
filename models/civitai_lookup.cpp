// Civitai by hash (model-sources.md §2.3): which version a local file is, and its preview.

#include "core/text.hpp"
#include "models/internal.hpp"
#include "models/library_internal.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using nlohmann::json;

constexpr std::size_t k_max_image = 16u << 20;

// 200 and 404 are answers; 429 and 5xx are retried; anything else (or HTML) fails.
core::Result<core::HttpResponse> classify(core::HttpResponse r, const std::string& what) {
  if (r.status == 404 ||
      (r.status < 300 &&
       core::lowercase(r.header("content-type")).find("text/html") == std::string::npos))
    return r;
  core::Error e = core::make_error(
      ErrorCode::remote, "civitai answered http " + std::to_string(r.status) + " for " + what,
      "check CIVITAI_ENDPOINT; try again later");
  e.http_status = r.status;
  e.retry_after_secs = retry_after_secs(r);
  if (r.status == 429) {
    e.code = ErrorCode::rate_limited;
    e.message = "civitai rate-limited the lookup of " + what;
    e.hint =
        "wait a few minutes and run the scan again: files already looked up are not asked again";
  } else if (r.status < 300) {
    e.code = ErrorCode::protocol;
    e.message = "civitai answered an HTML page for " + what;
  }
  return core::fail(e);
}

}  // namespace

core::Result<std::optional<json>> civitai_by_hash(core::HttpTransport& http,
                                                  const Endpoints& ep,
                                                  const std::string& sha256,
                                                  core::Clock& clock,
                                                  const core::RetryPolicy& policy) {
  core::HttpRequest req;
  req.url = ep.civitai + "/api/v1/model-versions/by-hash/" + sha256;
  req.headers = {{"User-Agent", ep.user_agent}, {"Accept", "application/json"}};
  if (!ep.civitai_token.empty())
    req.headers.push_back({"Authorization", "Bearer " + ep.civitai_token});
  std::string what = "hash " + sha256.substr(0, 12);
  TRY_ASSIGN(auto r, send_retrying(http, clock, policy, req, [&](core::HttpResponse x) {
               return classify(std::move(x), what);
             }));
  if (r.status == 404)
    return std::optional<json>();
  auto doc = json::parse(r.body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return core::fail(ErrorCode::protocol,
                      "civitai answered something that is not JSON for " + what);
  return std::optional<json>(std::move(doc));
}

core::Result<std::string> fetch_preview(core::HttpTransport& http,
                                        const Endpoints& ep,
                                        const std::string& url,
                                        core::Clock& clock,
                                        const core::RetryPolicy& policy) {
  core::HttpRequest req;
  req.url = url;  // a public image URL: never sent a token
  req.headers = {{"User-Agent", ep.user_agent}};
  TRY_ASSIGN(auto r, send_retrying(http, clock, policy, req, [&](core::HttpResponse x) {
               return classify(std::move(x), "a preview image");
             }));
  if (r.status != 200 || r.body.empty() || r.body.size() > k_max_image)
    return core::fail(ErrorCode::remote, "no preview at " + url + " (http " +
                                             std::to_string(r.status) + ", " +
                                             std::to_string(r.body.size()) + " bytes)");
  return r.body;
}

}  // namespace autopod::models
