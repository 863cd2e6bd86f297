// Hugging Face: HEAD /resolve/ for commit, size and sha256, redirect resolved once by hand
// (model-sources.md §1.3, §1.4). The token goes to the Hub only; the CDN URL is used bare.

#include <cstdlib>

#include "core/log.hpp"
#include "core/url.hpp"
#include "models/internal.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using core::fail;

std::string resolve_url_for(const Endpoints& ep, const Source& s) {
  std::string prefix = s.repo_type == "dataset" ? "/datasets/" : s.repo_type == "space" ? "/spaces/" : "/";
  std::string path;
  std::size_t start = 0;
  for (;;) {
    auto slash = s.path.find('/', start);
    path += (start ? "/" : "") + core::url_encode(s.path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  std::string rev = s.revision.empty() ? "main" : s.revision;
  return ep.hf + prefix + s.repo + "/resolve/" + core::url_encode(rev) + "/" + path;
}

// RateLimit: "resolvers";r=0;t=55 -> 56 when the window is spent, else -1.
int rate_limit_wait(const core::HttpResponse& r) {
  std::string value = r.header("ratelimit");
  auto remaining = value.find(";r=");
  auto reset = value.find(";t=");
  if (remaining == std::string::npos || reset == std::string::npos) return -1;
  if (std::atoi(value.c_str() + remaining + 3) != 0) return -1;
  return std::atoi(value.c_str() + reset + 3) + 1;
}

core::Error hf_error(const core::HttpResponse& r, const Endpoints& ep, const Source& s) {
  std::string code = r.header("x-error-code");
  std::string text = r.header("x-error-message");
  std::string rev = s.revision.empty() ? "main" : s.revision;
  std::string page = ep.hf + "/" + s.repo;
  core::Error e = core::make_error(ErrorCode::remote, "hugging face answered http " +
                                                          std::to_string(r.status) + " for " + s.repo);
  e.http_status = r.status;
  if (code == "GatedRepo" && r.status == 401) {
    e.code = ErrorCode::auth;
    e.message = "hugging face repo " + s.repo + " is gated and no token was sent";
    e.hint = "accept its conditions at " + page + ", then set HF_TOKEN to a read token";
  } else if (code == "GatedRepo") {
    e.code = ErrorCode::auth;
    e.message = "your HF_TOKEN has not been granted access to the gated repo " + s.repo;
    e.hint = "request access at " + page + " (approval may take a while), then sync again";
  } else if (code == "RepoNotFound") {
    e.code = ErrorCode::not_found;
    e.message = "hugging face repo " + s.repo + " does not exist or is private";
    e.hint = "check the owner/name; for a private repo set HF_TOKEN of an account that can see it";
  } else if (code == "EntryNotFound") {
    e.code = ErrorCode::not_found;
    e.message = "file " + s.path + " is not in " + s.repo + " at revision " + rev;
    e.hint = "check the path on " + page + "/tree/" + rev;
  } else if (code == "RevisionNotFound") {
    e.code = ErrorCode::not_found;
    e.message = "hugging face repo " + s.repo + " has no revision " + rev;
    e.hint = "use a branch, tag or 40-hex commit that exists";
  } else if (r.status == 401) {
    e.code = ErrorCode::auth;
    e.message = "hugging face refused HF_TOKEN (" + (text.empty() ? "invalid credentials" : text) +
                "); a bad token fails public files too";
    e.hint = "fix HF_TOKEN (hf.co/settings/tokens) or unset it for public repos";
  } else if (r.status == 403) {
    e.code = ErrorCode::auth;
    e.message = "hugging face refused access to " + s.repo + (text.empty() ? "" : ": " + text);
    e.hint = "the repo may be disabled; see " + page;
  } else if (r.status == 404) {
    e.code = ErrorCode::not_found;
    e.message = "hugging face has no " + s.path + " in " + s.repo;
    e.hint = "check the repo and path";
  } else if (r.status == 429) {
    e.code = ErrorCode::rate_limited;
    e.message = "hugging face rate-limited the resolve of " + s.repo + "/" + s.path;
    e.retry_after_secs = retry_after_secs(r) >= 0 ? retry_after_secs(r) : rate_limit_wait(r);
    e.hint = "wait for the 5-minute window to reset; a token (HF_TOKEN) has a higher quota";
  }
  return e;
}

// A regular git file's size and validator: GET Range: bytes=0-0 on the Hub with the token (the
// same host the HEAD went to), since a HEAD may carry no usable Content-Length.
core::Result<Probe> probe_hub_file(core::HttpTransport& http, core::Clock& clock,
                                   const core::RetryPolicy& policy, core::HttpRequest req,
                                   const Endpoints& ep, const Source& s) {
  req.method = "GET";
  req.headers.push_back({"Range", "bytes=0-0"});
  TRY_ASSIGN(auto r, send_retrying(http, clock, policy, req, [&](core::HttpResponse x) -> core::Result<core::HttpResponse> {
    if (x.status < 400) return x;
    return fail(hf_error(x, ep, s));
  }));
  Probe p;
  p.url = req.url;
  p.validator = r.header("etag");
  std::int64_t first = 0, last = 0, total = -1;
  if (r.status == 206 && parse_content_range(r.header("content-range"), first, last, total)) {
    p.size = total, p.ranges = true;
  } else {
    p.size = static_cast<std::int64_t>(r.body.size());
  }
  return p;
}

}  // namespace

core::Result<ResolvedFile> resolve_hf(core::HttpTransport& http, core::Clock& clock,
                                      const core::RetryPolicy& policy, const Endpoints& ep,
                                      const ManifestEntry& entry) {
  const Source& s = entry.source;
  core::HttpRequest req;
  req.method = "HEAD";
  req.url = resolve_url_for(ep, s);
  req.headers = {{"Accept-Encoding", "identity"}, {"User-Agent", ep.user_agent}};
  if (!ep.hf_token.empty()) req.headers.push_back({"Authorization", "Bearer " + ep.hf_token});
  auto classify = [&](core::HttpResponse r) -> core::Result<core::HttpResponse> {
    if (r.status < 400) return r;
    return fail(hf_error(r, ep, s));
  };
  core::HttpResponse head;
  // Relative redirects mean a renamed repo: follow them with the token (same host); stop at
  // the first absolute one, whose URL is signed storage and must not see the token.
  for (int hop = 0;; ++hop) {
    TRY_ASSIGN(head, send_retrying(http, clock, policy, req, classify));
    std::string location = head.header("location");
    if (head.status < 300 || head.status >= 400 || location.empty() ||
        location.find("://") != std::string::npos || hop >= 5)
      break;
    auto base = core::parse_url(req.url);
    req.url = (base ? base->origin() : ep.hf) + location;
  }
  ResolvedFile f;
  f.source = s.text;
  f.folder = entry.folder;
  f.revision = head.header("x-repo-commit");
  std::string linked = head.header("x-linked-etag");
  f.sha256 = linked.empty() ? "" : strip_etag(linked);  // LFS/Xet: the file's sha256
  f.validator = head.header("etag");
  std::string location = head.header("location");
  std::string target = head.status >= 300 && head.status < 400 && !location.empty() ? location : req.url;
  f.origin = req.url;
  f.auth = ep.hf_token.empty() ? "" : "hf";
  auto slash = s.path.rfind('/');
  f.name = entry.name.empty() ? s.path.substr(slash == std::string::npos ? 0 : slash + 1) : entry.name;
  Probe probe;
  if (target == req.url) {
    // A regular git file comes from the Hub itself, which wants the token (private repos).
    TRY_ASSIGN(probe, probe_hub_file(http, clock, policy, req, ep, s));
  } else {
    TRY_ASSIGN(probe, probe_storage(http, clock, policy, target, ep.user_agent,
                                    "hugging face storage for " + s.repo + "/" + s.path));
  }
  f.url = probe.url;
  f.ranges = probe.ranges;
  f.size = probe.size;
  if (!head.header("x-linked-size").empty() && f.size < 0)
    f.size = std::stoll(head.header("x-linked-size"));
  if (!probe.validator.empty()) f.validator = probe.validator;
  if (!entry.sha256.empty()) {
    if (!f.sha256.empty() && f.sha256 != entry.sha256)
      return fail(ErrorCode::invalid_argument,
                  entry.where + ": the manifest's sha256 " + entry.sha256 + " differs from the hub's " +
                      f.sha256 + " for " + s.repo + "/" + s.path,
                  "pin the revision the hash belongs to, or update the sha256");
    f.sha256 = entry.sha256;
  }
  return f;
}

}  // namespace autopod::models
