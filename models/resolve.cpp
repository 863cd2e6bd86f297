// The Resolver: one entry point per source kind; plain URLs live here too (model-sources.md §3).

#include <cstdlib>

#include "core/log.hpp"
#include "models/internal.hpp"

namespace autopod::models {

using core::ErrorCode;
using core::fail;

Endpoints Endpoints::from_config(const core::Config& config) {
  Endpoints ep = from_env();
  if (ep.hf_token.empty()) ep.hf_token = config.hf_token;
  if (ep.civitai_token.empty()) ep.civitai_token = config.civitai_token;
  return ep;
}

std::string Endpoints::token_for(const std::string& auth) const {
  return auth == "hf" ? hf_token : auth == "civitai" ? civitai_token : std::string();
}

Endpoints Endpoints::from_env() {
  Endpoints ep;
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  auto strip = [](std::string s) {
    while (!s.empty() && s.back() == '/') s.pop_back();
    return s;
  };
  if (auto v = env("HF_ENDPOINT"); !v.empty()) ep.hf = strip(v);
  if (auto v = env("CIVITAI_ENDPOINT"); !v.empty()) ep.civitai = strip(v);
  ep.hf_token = env("HF_TOKEN");
  ep.civitai_token = env("CIVITAI_API_TOKEN");
  return ep;
}

Resolver::Resolver(core::HttpTransport& http, Endpoints endpoints, core::Clock& clock,
                   core::RetryPolicy policy)
    : m_http(http), m_endpoints(std::move(endpoints)), m_clock(clock), m_policy(policy) {}

core::Result<ResolvedFile> Resolver::resolve(const ManifestEntry& entry) {
  core::Result<ResolvedFile> r = core::fail(ErrorCode::internal, "unknown source kind");
  switch (entry.source.kind) {
    case SourceKind::hugging_face:
      r = resolve_hf(m_http, m_clock, m_policy, m_endpoints, entry);
      break;
    case SourceKind::civitai:
      r = resolve_civitai(m_http, m_clock, m_policy, m_endpoints, entry);
      break;
    case SourceKind::url:
      r = resolve_url(m_http, m_clock, m_policy, m_endpoints, entry);
      break;
  }
  if (r) TRY(check_placement(r->folder, r->name));
  return r;
}

core::Result<ResolvedFile> resolve_url(core::HttpTransport& http, core::Clock& clock,
                                       const core::RetryPolicy& policy, const Endpoints& ep,
                                       const ManifestEntry& entry) {
  const Source& s = entry.source;
  TRY_ASSIGN(auto probe, probe_storage(http, clock, policy, s.url, ep.user_agent, s.url));
  ResolvedFile f;
  f.source = s.text;
  f.folder = entry.folder;
  f.url = probe.url;
  f.origin = s.url;
  f.size = probe.size;
  f.ranges = probe.ranges;
  f.validator = probe.validator;
  f.sha256 = entry.sha256;
  // Content-Disposition (reduced to its last component), else the final URL, else the original.
  f.name = entry.name;
  if (f.name.empty()) f.name = probe.disposition_name;
  if (f.name.empty()) f.name = url_file_name(probe.url);
  if (f.name.empty()) f.name = url_file_name(s.url);
  if (f.name.empty())
    return fail(ErrorCode::invalid_argument, entry.where + ": no file name in " + s.url,
                "add 'name:' to the entry");
  if (f.sha256.empty())
    core::logger("models")->warn("{}: no sha256 given; the hash computed on arrival is recorded",
                                 entry.where);
  return f;
}

}  // namespace autopod::models
