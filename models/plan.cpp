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
const RootEntry* present_record(const ManifestEntry& entry, const std::filesystem::path& root,
                                const RootListing& listing) {
  for (const auto& placed : listing.placed) {
    const auto& rec = placed.record;
    if (rec.source != entry.source.text) continue;
    if (!entry.folder.empty() && rec.folder != entry.folder) continue;
    if (!entry.name.empty() && rec.name != entry.name) continue;
    if (!entry.sha256.empty() && rec.sha256 != entry.sha256) continue;
    if (placed.size != rec.size || placed.mtime_ns != rec.mtime_ns) continue;
    if (placed.path.parent_path() != listing.folder_dir(root, rec.folder)) continue;
    return &placed;
  }
  return nullptr;
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

std::filesystem::path RootListing::folder_dir(const std::filesystem::path& root,
                                             const std::string& folder) const {
  auto it = folder_dirs.find(folder);
  return it != folder_dirs.end() ? it->second : root / folder;
}

bool SyncPlan::up_to_date() const {
  for (const auto& item : items)
    if (item.action != Action::present) return false;
  return true;
}

RootListing list_root(const std::filesystem::path& root) {
  RootListing listing;
  for (auto& [path, rec] : list_records(root)) {
    RootEntry e{path, std::move(rec)};
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) e.size = st.st_size, e.mtime_ns = mtime_ns(st);
    listing.placed.push_back(std::move(e));
  }
  for (const auto& folder : folder_keys()) {
    std::error_code ec;
    for (const auto& item : std::filesystem::directory_iterator(root / folder, ec))
      if (item.is_regular_file(ec)) listing.files.push_back(item.path());
  }
  return listing;
}

core::Result<SyncPlan> plan_sync(const Manifest& manifest, const std::filesystem::path& root,
                                 Resolver& resolver, Prune prune) {
  return plan_sync(manifest, list_root(root), root, resolver, prune);
}

core::Result<SyncPlan> plan_sync(const Manifest& manifest, const RootListing& listing,
                                 const std::filesystem::path& root, Resolver& resolver, Prune prune) {
  SyncPlan plan;
  plan.free_bytes = listing.free_bytes;
  std::set<std::filesystem::path> files(listing.files.begin(), listing.files.end());
  std::set<std::filesystem::path> wanted;
  for (const auto& entry : manifest.entries) {
    PlanItem item;
    item.entry = entry;
    if (const auto* found = present_record(entry, root, listing)) {
      item.path = found->path;
      wanted.insert(item.path);
      plan.items.push_back(std::move(item));
      continue;
    }
    TRY_ASSIGN(auto resolved, resolver.resolve(entry));
    item.path = listing.folder_dir(root, resolved.folder) / resolved.name;
    if (wanted.count(item.path))
      return core::fail(core::ErrorCode::invalid_argument,
                        entry.where + ": " + item.path.string() + " is already planned by another entry",
                        "give one of them a different 'name:'");
    wanted.insert(item.path);
    item.action = files.count(item.path) ? Action::replace : Action::download;
    item.bytes = std::max<std::int64_t>(resolved.size, 0);
    plan.download_bytes += item.bytes;
    item.resolved = std::move(resolved);
    plan.items.push_back(std::move(item));
  }
  if (prune == Prune::yes) {
    for (const auto& placed : listing.placed) {
      if (wanted.count(placed.path)) continue;
      if (is_pushed(placed.record)) continue;  // sent from a laptop: no source to fetch it again
      PlanItem item;
      item.action = Action::prune;
      item.path = placed.path;
      item.bytes = placed.record.size;
      plan.prune_bytes += placed.record.size;
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
    if (opt.token.empty()) opt.token = resolver.endpoints().token_for(item.resolved->auth);
    TRY_ASSIGN(auto done, download(*item.resolved, item.path, opt));
    TRY(record_placed(item.path, *item.resolved, done));
  }
  return {};
}

core::Status record_placed(const std::filesystem::path& path, const ResolvedFile& r,
                           const TransferResult& done) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return core::fail(core::ErrorCode::io, path.string() + " vanished after it was placed");
  return write_record(path, PlacedRecord{r.source, r.folder, r.name, r.revision, r.validator,
                                         done.size, mtime_ns(st), done.sha256});
}

}  // namespace autopod::models
