// One model file as the pod described it (models/pod/autopod_library.py) turned into what the
// library shows: header parsed here, recognition, completeness, hash, preview, source.

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

#include "models/library_internal.hpp"

namespace autopod::models {
namespace {

using nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string extension(const std::string& path) {
  auto slash = path.rfind('/');
  auto dot = path.rfind('.');
  return dot == std::string::npos || (slash != std::string::npos && dot < slash)
             ? ""
             : lower(path.substr(dot + 1));
}

// The preview a viewer shows first (§5 reader order): NAME.preview.{webp,png,jpg,jpeg}, then
// NAME.{webp,png,jpg,jpeg,gif}, then NAME.{mp4,webm}; case-insensitive.
std::string pick_preview(const std::string& stem, const std::vector<std::string>& sidecars) {
  static const char* const order[] = {
      ".preview.webp", ".preview.png", ".preview.jpg", ".preview.jpeg", ".webp", ".png",
      ".jpg",          ".jpeg",        ".gif",         ".mp4",          ".webm"};
  for (const char* suffix : order)
    for (const auto& s : sidecars)
      if (lower(s) == lower(stem) + suffix)
        return s;
  return "";
}

void from_safetensors(const std::string& head, LibraryFile& f) {
  auto h = parse_safetensors_header(head);
  if (!h) {
    f.completeness = "malformed";
    f.problem = h.error().message;
    if (h.error().code == core::ErrorCode::invalid_argument)
      f.completeness = "-";  // not read whole
    return;
  }
  f.recognition = recognise(*h);
  f.metadata = h->metadata;
  f.tensor_count = h->tensors.size();
  for (const auto& t : h->tensors)
    ++f.dtypes[t.dtype];
  auto want = static_cast<std::int64_t>(h->expected_size());
  if (f.size == want) {
    f.completeness = "complete";
  } else if (f.size < want) {
    f.completeness = "incomplete";
    f.problem = std::to_string(f.size) + " of " + std::to_string(want) + " bytes";
  } else {
    f.completeness = "malformed";
    f.problem = std::to_string(f.size - want) + " bytes follow the last tensor";
  }
}

void from_gguf(const std::string& head, LibraryFile& f) {
  auto g = parse_gguf_header(head);
  if (!g) {
    f.completeness = "malformed";
    f.problem = g.error().message;
    return;
  }
  f.recognition = recognise(*g);
  f.metadata = g->metadata;
  f.tensor_count = g->tensor_count;
}

}  // namespace

std::string base64_decode(const std::string& text) {
  if (text.empty() || text.size() % 4 != 0)
    return "";
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0)
    return "";
  // EVP_DecodeBlock counts the padding as decoded zero bytes.
  std::size_t pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2
                    : text.back() == '='                             ? 1
                                                                     : 0;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string base64_encode(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(std::max(n, 0)));
  return out;
}

bool needs_full_header(const json& item, std::uint64_t first_read) {
  if (!item.contains("head") || (extension(item.value("path", "")) != "safetensors" &&
                                 extension(item.value("path", "")) != "sft"))
    return false;
  auto head = base64_decode(item.value("head", ""));
  auto n = safetensors_header_length(head);
  return n && head.size() == 8 && 8 + *n > first_read && 8 + *n <= k_header_read_cap;
}

LibraryFile describe_file(const json& item) {
  LibraryFile f;
  f.path = item.value("path", "");
  f.folder = item.value("folder", "");
  f.extra_dir = item.value("extra_dir", "");
  f.relative = item.value("relative", "");
  f.size = item.value("size", std::int64_t{0});
  f.mtime_ns = item.value("mtime_ns", std::int64_t{0});
  f.format = extension(f.path);
  if (f.format == "sft")
    f.format = "safetensors";
  std::string name = f.path.substr(f.path.rfind('/') + 1);
  f.recognition = recognise_by_name(name, f.folder);
  std::string head = base64_decode(item.value("head", ""));
  if (item.contains("error"))
    f.completeness = "unreadable", f.problem = item.value("error", "");
  else if (f.format == "safetensors")
    from_safetensors(head, f);
  else if (f.format == "gguf")
    from_gguf(head, f);
  if (f.format == "safetensors" && f.completeness == "-" && f.problem.empty())
    f.problem = "header larger than " + std::to_string(k_header_read_cap) + " bytes: not read";
  // Upscalers are told by their folder (§4.3); a header that named nothing keeps that.
  if (f.recognition.kind == ModelKind::unknown && f.folder == "upscale_models")
    f.recognition.kind = ModelKind::upscaler;
  for (const auto& s : item.value("sidecars", json::array()))
    f.sidecars.push_back(s.get<std::string>());
  f.preview = pick_preview(name.substr(0, name.rfind('.')), f.sidecars);
  if (item.contains("sha256") && item["sha256"].is_string())
    f.sha256 = item["sha256"].get<std::string>();
  if (const auto& r = item.value("record", json()); r.is_object()) {
    PlacedRecord rec{r.value("source", ""),
                     r.value("folder", ""),
                     r.value("name", ""),
                     r.value("revision", ""),
                     r.value("etag", ""),
                     r.value("size", std::int64_t{0}),
                     r.value("mtime_ns", std::int64_t{0}),
                     r.value("sha256", "")};
    // The record's hash holds while the file is as placed.
    if (f.sha256.empty() && rec.size == f.size && rec.mtime_ns == f.mtime_ns)
      f.sha256 = rec.sha256;
    f.record = std::move(rec);
  }
  auto texts = item.value("texts", json::object());
  for (const auto& [k, v] : texts.items())
    if (v.is_string())
      f.sidecar_texts[k] = v.get<std::string>();
  return f;
}

}  // namespace autopod::models
