// resolve_needs (sync.hpp): the model files a workflow needs, matched against the user's
// manifest, the models root and the urls the workflow embeds.

#include <algorithm>
#include <set>

#include "models/internal.hpp"
#include "models/sync.hpp"

namespace autopod::models {
namespace {

// The name an entry places without asking the network; empty when only resolving tells.
std::string known_name(const ManifestEntry& e) {
  if (!e.name.empty())
    return e.name;
  if (e.source.kind == SourceKind::hugging_face) {
    auto slash = e.source.path.rfind('/');
    return slash == std::string::npos ? e.source.path : e.source.path.substr(slash + 1);
  }
  if (e.source.kind == SourceKind::url)
    return url_file_name(e.source.url);
  return {};
}

struct Candidate {
  const ManifestEntry* entry;
  std::string folder, name;
  bool resolved = false;  // folder and name are the resolver's
};

}  // namespace

core::Result<NeedsResolution> resolve_needs(const std::vector<ModelNeed>& needs,
                                            const Manifest& manifest,
                                            const RootListing& listing,
                                            const std::filesystem::path& root,
                                            Resolver& resolver) {
  NeedsResolution out;
  std::vector<Candidate> candidates;
  for (const auto& e : manifest.entries) {
    Candidate c{&e, e.folder, known_name(e)};
    for (const auto& placed : listing.placed)  // placed before: its record knows the name
      if (placed.record.source == e.source.text &&
          (c.folder.empty() || c.folder == placed.record.folder) &&
          (e.name.empty() || e.name == placed.record.name))
        c.folder = placed.record.folder, c.name = placed.record.name;
    candidates.push_back(c);
  }
  const auto& keys = folder_keys();
  std::set<const ManifestEntry*> taken;
  std::set<std::filesystem::path> taken_paths;  // entries made here, by the path they place
  std::set<std::filesystem::path> files(listing.files.begin(), listing.files.end());
  auto match = [&](const std::string& folder, const std::string& name) -> const ManifestEntry* {
    for (const auto& c : candidates)
      if (c.folder == folder && c.name == name)
        return c.entry;
    return nullptr;
  };
  bool resolved_all = false;
  for (const auto& need : needs) {
    const std::string& folder = need.folder;
    if (std::find(keys.begin(), keys.end(), folder) == keys.end()) {
      out.missing.push_back(
          {need, folder, "'" + need.folder + "' is not a ComfyUI model folder autopod knows"});
      continue;
    }
    if (need.name.find('/') != std::string::npos || need.name.find('\\') != std::string::npos) {
      out.missing.push_back(
          {need, folder, "it names a subfolder; autopod places files at the top of a folder"});
      continue;
    }
    const ManifestEntry* entry = match(folder, need.name);
    if (!entry && !resolved_all) {  // learn the names only resolving tells (Civitai, ...)
      resolved_all = true;
      for (auto& c : candidates) {
        if (!c.folder.empty() && !c.name.empty())
          continue;
        TRY_ASSIGN(auto r, resolver.resolve(*c.entry));
        c.folder = r.folder, c.name = r.name, c.resolved = true;
      }
      entry = match(folder, need.name);
    }
    if (entry) {
      if (taken.insert(entry).second)
        out.manifest.entries.push_back(*entry);
      continue;
    }
    auto path = root / folder / need.name;
    if (files.count(path)) {
      auto placed = std::find_if(listing.placed.begin(), listing.placed.end(),
                                 [&](const RootEntry& p) { return p.path == path; });
      if (placed == listing.placed.end()) {
        out.present.push_back(need);  // placed by hand
        continue;
      }
      // Placed by autopod: keep it as its record says (present in the plan, nothing fetched).
      if (auto source = parse_source(placed->record.source);
          source && taken_paths.insert(path).second) {
        ManifestEntry e;
        e.source = *source, e.folder = folder, e.name = need.name, e.where = need.where;
        out.manifest.entries.push_back(std::move(e));
        continue;
      }
    }
    if (!need.url.empty()) {
      auto source = parse_source(need.url);
      if (!source) {
        out.missing.push_back(
            {need, folder, "its url is not one autopod can fetch: " + source.error().message});
        continue;
      }
      if (auto st = check_placement(folder, need.name); !st) {
        out.missing.push_back({need, folder, st.error().message});
        continue;
      }
      if (!taken_paths.insert(path).second)
        continue;
      ManifestEntry e;
      e.source = *source, e.folder = folder, e.name = need.name, e.where = need.where;
      if (need.sha256.size() == 64)
        e.sha256 = need.sha256;
      out.manifest.entries.push_back(std::move(e));
      continue;
    }
    out.missing.push_back(
        {need, folder,
         "not in the manifest, not in the models root, and the workflow gives no url"});
  }
  return out;
}

}  // namespace autopod::models
