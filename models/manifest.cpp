// Manifests: YAML in, entries out, every mistake named by file:line:column before any byte moves.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/fs.hpp"
#include "core/text.hpp"
#include "models/models.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using core::fail;

std::string where(const std::string& origin, const YAML::Mark& mark) {
  if (mark.line < 0) return origin;
  return origin + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::string joined_folders() {
  std::string out;
  for (const auto& key : folder_keys()) out += (out.empty() ? "" : ", ") + key;
  return out;
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
           return std::isxdigit(c) != 0;
         });
}

const char* const k_keys[] = {"source", "folder", "name", "sha256", "revision", "file"};

core::Result<ManifestEntry> parse_entry(const YAML::Node& node, const std::string& origin) {
  std::string at = where(origin, node.Mark());
  if (!node.IsMap())
    return fail(ErrorCode::invalid_argument, at + ": a model entry must be a mapping",
                "write it as '- source: hf://org/repo/file.safetensors' with 'folder:' below");
  for (const auto& kv : node) {
    auto key = kv.first.as<std::string>();
    if (std::find(std::begin(k_keys), std::end(k_keys), key) == std::end(k_keys))
      return fail(ErrorCode::invalid_argument,
                  where(origin, kv.first.Mark()) + ": unknown key '" + key + "'",
                  "the keys are source, folder, name, sha256, revision and file");
  }
  auto text = [&](const char* key) { return node[key] ? node[key].as<std::string>() : ""; };
  if (!node["source"])
    return fail(ErrorCode::invalid_argument, at + ": the entry has no 'source'",
                "add 'source: hf://org/repo/path', 'civitai:VERSION_ID' or an https URL");
  ManifestEntry entry;
  entry.where = where(origin, node["source"].Mark());
  auto source = parse_source(text("source"));
  if (!source) {
    auto e = source.error();
    e.message = entry.where + ": " + e.message;
    return fail(std::move(e));
  }
  entry.source = std::move(source).value();
  entry.folder = text("folder");
  entry.name = text("name");
  entry.sha256 = core::lowercase(text("sha256"));
  entry.file = text("file");
  if (auto rev = text("revision"); !rev.empty()) {
    if (entry.source.kind != SourceKind::hugging_face)
      return fail(ErrorCode::invalid_argument,
                  where(origin, node["revision"].Mark()) + ": 'revision' applies to hf sources",
                  "pin a civitai file with its version id; a plain URL has no revision");
    entry.source.revision = rev;
  }
  if (!entry.sha256.empty() && !is_hex64(entry.sha256))
    return fail(ErrorCode::invalid_argument,
                where(origin, node["sha256"].Mark()) + ": sha256 must be 64 hex digits",
                "copy the full SHA256 (not AutoV2) from the model page");
  if (entry.folder.empty() && entry.source.kind != SourceKind::civitai)
    return fail(ErrorCode::invalid_argument, at + ": 'folder' is required for this source",
                "add 'folder:' with one of: " + joined_folders());
  if (!entry.folder.empty()) {
    auto st = check_placement(entry.folder, entry.name.empty() ? "x" : entry.name);
    if (!st) {
      auto e = st.error();
      e.message = where(origin, node[entry.name.empty() ? "folder" : "name"].Mark()) + ": " +
                  e.message;
      return fail(std::move(e));
    }
  } else if (!entry.name.empty()) {
    TRY(check_placement("checkpoints", entry.name));
  }
  return entry;
}

}  // namespace

const std::vector<std::string>& folder_keys() {
  static const std::vector<std::string> keys = {
      "checkpoints",  "loras",          "vae",           "text_encoders", "diffusion_models",
      "clip_vision",  "style_models",   "embeddings",    "diffusers",     "vae_approx",
      "controlnet",   "gligen",         "upscale_models", "hypernetworks", "photomaker",
      "classifiers",  "model_patches",  "audio_encoders", "configs",
      "latent_upscale_models", "animatediff_models"};
  return keys;
}

core::Status check_placement(const std::string& folder, const std::string& name) {
  const auto& keys = folder_keys();
  if (std::find(keys.begin(), keys.end(), folder) == keys.end()) {
    if (folder.find('/') != std::string::npos || folder.find("..") != std::string::npos)
      return fail(ErrorCode::invalid_argument,
                  "folder '" + folder + "' would leave the models root",
                  "use a folder key, one of: " + joined_folders());
    return fail(ErrorCode::invalid_argument, "unknown folder '" + folder + "'",
                "use one of: " + joined_folders());
  }
  bool control = std::any_of(name.begin(), name.end(),
                             [](unsigned char c) { return c < 0x20 || c == 0x7f; });
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\\') != std::string::npos || control || name.find("..") == 0)
    return fail(ErrorCode::invalid_argument,
                "name '" + name + "' would leave the folder " + folder,
                "give a plain file name without '/', '\\' or '..'");
  return {};
}

core::Result<Manifest> parse_manifest(const std::string& yaml, const std::string& origin) {
  YAML::Node doc;
  try {
    doc = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::invalid_argument, where(origin, e.mark) + ": " + e.msg,
                "fix the YAML there; the manifest is 'models:' followed by '- source: ...' items");
  }
  try {
    if (!doc.IsMap() || !doc["models"] || !doc["models"].IsSequence())
      return fail(ErrorCode::invalid_argument,
                  where(origin, doc.Mark()) + ": the manifest has no 'models:' list",
                  "start it with 'models:' and list entries as '- source: ...'");
    Manifest manifest;
    for (const auto& node : doc["models"]) {
      TRY_ASSIGN(auto entry, parse_entry(node, origin));
      manifest.entries.push_back(std::move(entry));
    }
    return manifest;
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::invalid_argument, where(origin, e.mark) + ": " + e.msg,
                "each value is a plain string");
  }
}

core::Result<Manifest> load_manifest(const std::filesystem::path& path) {
  auto text = core::read_file(path);
  if (!text) {
    auto e = text.error();
    e.hint = "check the manifest path";
    return fail(std::move(e));
  }
  return parse_manifest(*text, path.string());
}

}  // namespace autopod::models
