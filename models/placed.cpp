// Placed-file records: "NAME.autopod.json" beside each model autopod placed. ComfyUI lists only
// model extensions, so the record never shows up in a loader; a sidecar survives a folder being
// copied or moved and needs no shared index (and no lock) per models root.

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "core/fs.hpp"
#include "models/models.hpp"

namespace autopod::models {

namespace {
constexpr const char* k_suffix = ".autopod.json";
}

std::filesystem::path record_path(const std::filesystem::path& model_file) {
  return model_file.parent_path() / (model_file.filename().string() + k_suffix);
}

std::string record_text(const PlacedRecord& r) {
  nlohmann::json j = {{"version", 1},       {"source", r.source},     {"folder", r.folder},
                      {"name", r.name},     {"revision", r.revision}, {"etag", r.etag},
                      {"size", r.size},     {"mtime_ns", r.mtime_ns}, {"sha256", r.sha256}};
  return j.dump(2) + "\n";
}

std::string pushed_source(const std::string& local_name) { return "push:" + local_name; }

bool is_pushed(const PlacedRecord& r) { return r.source.rfind("push:", 0) == 0; }

core::Status write_record(const std::filesystem::path& model_file, const PlacedRecord& r) {
  return core::write_file_atomic(record_path(model_file), record_text(r), 0644);
}

core::Result<PlacedRecord> read_record(const std::filesystem::path& model_file) {
  TRY_ASSIGN(auto text, core::read_file(record_path(model_file)));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return core::fail(core::ErrorCode::protocol,
                      record_path(model_file).string() + " is not an autopod record",
                      "delete it; the next sync re-verifies the model");
  PlacedRecord r;
  r.source = j.value("source", "");
  r.folder = j.value("folder", "");
  r.name = j.value("name", "");
  r.revision = j.value("revision", "");
  r.etag = j.value("etag", "");
  r.size = j.value("size", std::int64_t{0});
  r.mtime_ns = j.value("mtime_ns", std::int64_t{0});
  r.sha256 = j.value("sha256", "");
  return r;
}

std::vector<std::pair<std::filesystem::path, PlacedRecord>> list_records(
    const std::filesystem::path& root) {
  std::vector<std::pair<std::filesystem::path, PlacedRecord>> out;
  const std::string suffix = k_suffix;
  for (const auto& folder : folder_keys()) {
    std::error_code ec;
    for (const auto& item : std::filesystem::directory_iterator(root / folder, ec)) {
      std::string name = item.path().filename().string();
      if (name.size() <= suffix.size() ||
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
        continue;
      auto model = item.path().parent_path() / name.substr(0, name.size() - suffix.size());
      if (auto r = read_record(model)) out.emplace_back(model, std::move(r).value());
    }
  }
  return out;
}

}  // namespace autopod::models
