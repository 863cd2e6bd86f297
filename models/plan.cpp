// Sync plans: what the manifest wants against what the models root holds, decided from the
// records (size + mtime), without hashing and without asking the network for present files.

#include <sys/stat.h>

#include <set>

#include "core/log.hpp"
#include "models/models.hpp"

namespace autopod::models {
namespace {

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// The record of the entry's file when the file is unchanged since autopod placed it.
std::optional<std::pair<std::filesystem::path, PlacedRecord>> present_record(
    const ManifestEntry& entry, const std::filesystem::path& root,
    const std::vector<std::pair<std::filesystem::path, PlacedRecord>>& records) {
  for (const auto& [path, rec] : records) {
    if (rec.source != entry.source.text) continue;
    if (!entry.folder.empty() && rec.folder != entry.folder) continue;
    if (!entry.name.empty() && rec.name != entry.name) continue;
    if (!entry.sha256.empty() && rec.sha256 != entry.sha256) continue;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    if (st.st_size != rec.size || mtime_ns(st) != rec.mtime_ns) continue;
    if (path.parent_path() != root / rec.folder) continue;
    return std::make_pair(path, rec);
  }
  return std::nullopt;
}

}  // namespace

const char* to_string(Action action) {
  switch (action) {
    case Action::present: return "present";
    case Action::download: return "download";
    case Action::replace: return "replace";
    case Action::prune: return "prune";
  }
  return "present";
}

bool SyncPlan::up_to_date() const {
  for (const auto& item : items)
    if (item.action != Action::present) return false;
  return true;
}

core::Result<SyncPlan> plan_sync(const Manifest& manifest, const std::filesystem::path& root,
                                 Resolver& resolver, Prune prune) {
  SyncPlan plan;
  auto records = list_records(root);
  std::set<std::filesystem::path> wanted;
  for (const auto& entry : manifest.entries) {
    PlanItem item;
    item.entry = entry;
    if (auto found = present_record(entry, root, records)) {
      item.path = found->first;
      wanted.insert(item.path);
      plan.items.push_back(std::move(item));
      continue;
    }
    TRY_ASSIGN(auto resolved, resolver.resolve(entry));
    item.path = root / resolved.folder / resolved.name;
    if (wanted.count(item.path))
      return core::fail(core::ErrorCode::invalid_argument,
                        entry.where + ": " + item.path.string() + " is already planned by another entry",
                        "give one of them a different 'name:'");
    wanted.insert(item.path);
    item.action = std::filesystem::exists(item.path) ? Action::replace : Action::download;
    item.bytes = std::max<std::int64_t>(resolved.size, 0);
    plan.download_bytes += item.bytes;
    item.resolved = std::move(resolved);
    plan.items.push_back(std::move(item));
  }
  if (prune == Prune::yes) {
    for (const auto& [path, rec] : records) {
      if (wanted.count(path)) continue;
      PlanItem item;
      item.action = Action::prune;
      item.path = path;
      item.bytes = rec.size;
      plan.prune_bytes += rec.size;
      plan.items.push_back(std::move(item));
    }
  }
  return plan;
}

core::Status apply_plan(const SyncPlan& plan, const std::filesystem::path& root,
                        const TransferOptions& options, Resolver& resolver) {
  (void)root;
  for (const auto& item : plan.items) {
    if (item.action == Action::prune) {
      std::error_code ec;
      std::filesystem::remove(item.path, ec);
      std::filesystem::remove(record_path(item.path), ec);
      core::logger("models")->info("pruned {}", item.path.string());
      continue;
    }
    if (item.action == Action::present || !item.resolved) continue;
    TransferOptions opt = options;
    const ManifestEntry entry = item.entry;
    if (!opt.reresolve) opt.reresolve = [&resolver, entry] { return resolver.resolve(entry); };
    TRY_ASSIGN(auto done, download(*item.resolved, item.path, opt));
    struct stat st {};
    if (::stat(item.path.c_str(), &st) != 0)
      return core::fail(core::ErrorCode::io, item.path.string() + " vanished after it was placed");
    const auto& r = *item.resolved;
    TRY(write_record(item.path, PlacedRecord{r.source, r.folder, r.name, r.revision, r.validator,
                                             done.size, mtime_ns(st), done.sha256}));
  }
  return {};
}

}  // namespace autopod::models
