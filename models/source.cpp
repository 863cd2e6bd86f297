// Source parsing: every URL form of model-sources.md §1.1 (Hugging Face) and §2.2 (Civitai),
// hf:// and civitai: shorthands, AIR URNs, and plain URLs.

#include <algorithm>
#include <cctype>

#include "core/text.hpp"
#include "core/url.hpp"
#include "models/internal.hpp"
#include "models/models.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using core::fail;

const char* const k_forms =
    "write hf://owner/repo/path[@revision], a huggingface.co resolve or blob URL, "
    "civitai:VERSION_ID, a civitai.com or civitai.red model/version/download URL, "
    "an AIR (urn:air:...:civitai:MODEL@VERSION) or an https URL";

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

std::string query_value(const std::string& query, const std::string& key) {
  for (const auto& pair : split(query, '&')) {
    auto eq = pair.find('=');
    if (eq != std::string::npos && pair.substr(0, eq) == key) return percent_decode(pair.substr(eq + 1));
  }
  return {};
}

bool host_is(const std::string& host, const std::string& domain) {
  return host == domain || (host.size() > domain.size() &&
                            host.compare(host.size() - domain.size() - 1, std::string::npos,
                                         "." + domain) == 0);
}

// [datasets/|spaces/]owner/name, then the rest; false when too short.
bool take_repo(std::vector<std::string>& parts, Source& s) {
  s.repo_type = "model";
  if (!parts.empty() && (parts[0] == "datasets" || parts[0] == "spaces")) {
    s.repo_type = parts[0] == "datasets" ? "dataset" : "space";
    parts.erase(parts.begin());
  }
  if (parts.size() < 2 || parts[0].empty() || parts[1].empty()) return false;
  s.repo = parts[0] + "/" + parts[1];
  parts.erase(parts.begin(), parts.begin() + 2);
  return true;
}

std::string join_decoded(const std::vector<std::string>& parts, std::size_t from) {
  std::string out;
  for (std::size_t i = from; i < parts.size(); ++i)
    out += (out.empty() ? "" : "/") + percent_decode(parts[i]);
  return out;
}

core::Result<Source> parse_hf_shorthand(const std::string& text) {
  Source s;
  s.kind = SourceKind::hugging_face;
  s.text = text;
  std::string rest = text.substr(5);
  auto at = rest.rfind('@');
  if (at != std::string::npos && rest.find('/', at) == std::string::npos) {
    s.revision = rest.substr(at + 1);
    rest = rest.substr(0, at);
  }
  auto parts = split(rest, '/');
  if (!take_repo(parts, s) || parts.empty() || parts.back().empty())
    return fail(ErrorCode::invalid_argument, "'" + text + "' names no file in a repo",
                "write hf://owner/repo/path/to/file.safetensors[@revision]");
  s.path = join_decoded(parts, 0);
  return s;
}

core::Result<Source> parse_hf_url(const std::string& text, const core::Url& url) {
  Source s;
  s.kind = SourceKind::hugging_face;
  s.text = text;
  auto parts = split(url.path.substr(1), '/');
  if (!take_repo(parts, s) || parts.size() < 3 || parts.back().empty())
    return fail(ErrorCode::invalid_argument, "'" + text + "' is not a Hugging Face file URL",
                "copy the link of the file's download button (.../resolve/REVISION/PATH)");
  if (parts[0] == "tree")
    return fail(ErrorCode::invalid_argument, "'" + text + "' is a folder, not a file",
                "list each file of the folder as its own entry");
  if (parts[0] != "resolve" && parts[0] != "blob")
    return fail(ErrorCode::invalid_argument, "'" + text + "' is not a resolve or blob URL",
                "copy the link of the file's download button (.../resolve/REVISION/PATH)");
  s.revision = percent_decode(parts[1]);  // refs%2Fpr%2F1 arrives encoded
  s.path = join_decoded(parts, 2);
  return s;
}

core::Result<Source> parse_civitai_url(const std::string& text, const core::Url& url) {
  Source s;
  s.kind = SourceKind::civitai;
  s.text = text;
  auto parts = split(url.path.substr(1), '/');
  auto at = [&](std::size_t i) { return i < parts.size() ? parts[i] : std::string(); };
  if (at(0) == "models" && all_digits(at(1))) {
    s.model_id = at(1);
    s.version_id = query_value(url.query, "modelVersionId");
    if (s.version_id.empty()) s.version_id = query_value(url.query, "version");
  } else if (at(0) == "api" && at(1) == "download" && at(2) == "models" && all_digits(at(3))) {
    s.version_id = at(3);
    s.file_id = query_value(url.query, "fileId");
    std::string selectors;
    for (const auto& pair : split(url.query, '&')) {
      auto key = pair.substr(0, pair.find('='));
      if (key == "type" || key == "format" || key == "size" || key == "fp" || key == "quantType")
        selectors += (selectors.empty() ? "" : "&") + pair;
    }
    s.selectors = selectors;
  } else if (at(0) == "api" && at(1) == "v1" &&
             (at(2) == "model-versions" || at(2) == "modelVersions") && all_digits(at(3))) {
    s.version_id = at(3);
  } else if (at(0) == "model-versions" && all_digits(at(1))) {
    s.version_id = at(1);
  } else {
    return fail(ErrorCode::invalid_argument, "'" + text + "' names no Civitai model or version",
                "copy the model page URL (civitai.com/models/ID?modelVersionId=VID)");
  }
  if (!s.version_id.empty() && !all_digits(s.version_id))
    return fail(ErrorCode::invalid_argument, "'" + text + "' has a non-numeric version id");
  return s;
}

// urn:air:{ecosystem}:{type}:civitai:{modelId}@{vid}[+{fileId}][.{format}]
core::Result<Source> parse_air(const std::string& text) {
  auto parts = split(text, ':');
  if (parts.size() != 6 || parts[4] != "civitai")
    return fail(ErrorCode::invalid_argument, "'" + text + "' is not a Civitai AIR",
                "an AIR looks like urn:air:sdxl:lora:civitai:328553@368189");
  Source s;
  s.kind = SourceKind::civitai;
  s.text = text;
  std::string id = parts[5];
  if (auto dot = id.find('.'); dot != std::string::npos) id = id.substr(0, dot);
  if (auto plus = id.find('+'); plus != std::string::npos) {
    s.file_id = id.substr(plus + 1);
    id = id.substr(0, plus);
  }
  auto at = id.find('@');
  s.model_id = id.substr(0, at);
  if (at != std::string::npos) s.version_id = id.substr(at + 1);
  if (!all_digits(s.model_id) || (at != std::string::npos && !all_digits(s.version_id)) ||
      (!s.file_id.empty() && !all_digits(s.file_id)))
    return fail(ErrorCode::invalid_argument, "'" + text + "' has a malformed civitai id",
                "an AIR looks like urn:air:sdxl:lora:civitai:328553@368189");
  return s;
}

}  // namespace

std::string percent_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

core::Result<Source> parse_source(const std::string& text) {
  if (text.rfind("hf://", 0) == 0) return parse_hf_shorthand(text);
  if (text.rfind("civitai:", 0) == 0) {
    std::string id = text.substr(8);
    if (!all_digits(id))
      return fail(ErrorCode::invalid_argument, "'" + text + "' needs a numeric version id",
                  "write civitai:VERSION_ID, e.g. civitai:128713");
    Source s;
    s.kind = SourceKind::civitai;
    s.text = text;
    s.version_id = id;
    return s;
  }
  if (text.rfind("urn:air:", 0) == 0) return parse_air(text);
  auto url = core::parse_url(text);
  if (!url || (url->scheme != "https" && url->scheme != "http"))
    return fail(ErrorCode::invalid_argument, "'" + text + "' is not a model source", k_forms);
  std::string host = core::lowercase(url->host);
  if (host_is(host, "huggingface.co") || host_is(host, "hf.co") || host_is(host, "huggingface.com"))
    return parse_hf_url(text, *url);
  if (host_is(host, "civitai.com") || host_is(host, "civitai.red"))
    return parse_civitai_url(text, *url);
  Source s;
  s.kind = SourceKind::url;
  s.text = text;
  s.url = text;
  return s;
}

}  // namespace autopod::models
