// The model library's requests to the machine that holds the models root, through the pod-side
// program (models/pod/autopod_library.py); header bytes come back, parsing happens here.

#include <algorithm>

#include "core/fs.hpp"
#include "core/random.hpp"
#include "models/library_internal.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using nlohmann::json;

// `--set` keys people type, mapped to Lora-Manager's metadata.json keys (§5); lists split on ",".
std::pair<std::string, json> meta_entry(const std::string& key, const std::string& value) {
  static const std::map<std::string, std::string> alias = {{"description", "modelDescription"},
                                                           {"trigger_words", "trainedWords"},
                                                           {"base_model", "base_model"},
                                                           {"notes", "notes"},
                                                           {"tags", "tags"}};
  auto it = alias.find(key);
  std::string k = it == alias.end() ? key : it->second;
  if (k != "trainedWords" && k != "tags")
    return {k, value};
  json list = json::array();
  std::size_t at = 0;
  while (at <= value.size()) {
    auto comma = value.find(',', at);
    std::string part =
        value.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    part.erase(0, part.find_first_not_of(' '));
    part.erase(part.find_last_not_of(' ') + 1);
    if (!part.empty())
      list.push_back(part);
    if (comma == std::string::npos)
      break;
    at = comma + 1;
  }
  return {k, list};
}

std::vector<HashedFile> hashed_files(const json& items) {
  std::vector<HashedFile> out;
  for (const auto& f : items)
    out.push_back({f.value("path", ""), f.value("sha256", ""), f.value("cached", false),
                   f.value("bytes_read", std::uint64_t{0}), f.value("error", "")});
  return out;
}

}  // namespace

core::Result<LibraryListing> list_library(const PodExec& exec,
                                          const std::string& root,
                                          const LibraryQuery& query) {
  LibraryListing out;
  json req = {{"op", "headers"},
              {"root", root},
              {"cap", k_header_first_read},
              {"texts", query.sidecar_texts}};
  if (!query.folder.empty())
    req["folder"] = query.folder;
  if (!query.paths.empty())
    req["paths"] = query.paths, req["cap"] = k_header_read_cap;
  TRY_ASSIGN(auto answer, pod_request(exec, req));
  ++out.round_trips;
  auto items = answer.value("files", json::array());
  std::vector<std::string> big;
  for (const auto& item : items)
    if (query.paths.empty() && needs_full_header(item, k_header_first_read))
      big.push_back(item.value("path", ""));
  if (!big.empty()) {  // headers above 64 KiB (full checkpoints), all in one more request
    TRY_ASSIGN(auto more, pod_request(exec, {{"op", "headers"},
                                             {"root", root},
                                             {"paths", big},
                                             {"cap", k_header_read_cap},
                                             {"texts", query.sidecar_texts}}));
    ++out.round_trips;
    std::map<std::string, json> by_path;
    for (auto& item : more.value("files", json::array()))
      by_path[item.value("path", "")] = item;
    for (auto& item : items)
      if (auto it = by_path.find(item.value("path", "")); it != by_path.end()) {
        // Asked by path, the pod measures these from the root's real path: keep the walk's.
        it->second["folder"] = item.value("folder", "");
        it->second["relative"] = item.value("relative", "");
        item = it->second;
      }
  }
  for (const auto& item : items) {
    out.header_bytes += item.value("head", std::string()).size() / 4 * 3;
    out.files.push_back(describe_file(item));
  }
  std::sort(out.files.begin(), out.files.end(), [](const LibraryFile& a, const LibraryFile& b) {
    return std::tie(a.folder, a.path) < std::tie(b.folder, b.path);
  });
  return out;
}

core::Result<std::vector<HashedFile>> hash_library(const PodExec& exec,
                                                   const std::string& root,
                                                   const std::vector<std::string>& paths) {
  json req = {{"op", "hash"}, {"root", root}};
  if (!paths.empty())
    req["paths"] = paths;
  TRY_ASSIGN(auto answer, pod_request(exec, req));
  return hashed_files(answer.value("files", json::array()));
}

core::Result<std::string> start_scan_job(const PodExec& exec,
                                         const std::string& root,
                                         const ScanRequest& request) {
  std::string job = core::random_hex(8);
  json req = {{"op", "scan"},
              {"root", root},
              {"job", job},
              {"folder", request.folder},
              {"max_bytes_per_sec", request.max_bytes_per_sec}};
  if (!request.paths.empty())
    req["paths"] = request.paths;
  TRY(pod_request(exec, req));
  return job;
}

core::Result<std::vector<HashedFile>> scan_results(const PodExec& exec,
                                                   const std::string& root,
                                                   const std::string& job) {
  TRY_ASSIGN(auto answer,
             pod_request(exec, {{"op", "status"}, {"root", root}, {"job", job}, {"results", true}}));
  auto jobs = answer.value("jobs", json::array());
  if (jobs.empty())
    return core::fail(ErrorCode::not_found, "no scan job " + job + " under " + root,
                      "its state lives in <models_root>/.autopod/jobs/");
  return hashed_files(jobs.at(0).value("results", json::array()));
}

core::Result<std::vector<std::string>> write_meta(const PodExec& exec,
                                                  const std::string& root,
                                                  const std::string& path,
                                                  const std::vector<std::string>& sets,
                                                  const std::string& preview_file) {
  json req = {{"op", "meta"}, {"root", root}, {"path", path}};
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      return core::fail(ErrorCode::invalid_argument, "--set " + s + " is not KEY=VALUE",
                        "for example --set trigger_words=\"red fox, forest\"");
    auto [k, v] = meta_entry(s.substr(0, eq), s.substr(eq + 1));
    req["set"][k] = v;
  }
  if (!preview_file.empty()) {
    TRY_ASSIGN(auto bytes, core::read_file(preview_file));
    auto dot = preview_file.rfind('.');
    std::string ext = dot == std::string::npos ? "" : preview_file.substr(dot);
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (bytes.size() > (16u << 20))
      return core::fail(ErrorCode::invalid_argument, preview_file + " is larger than 16 MiB",
                        "use a smaller preview image");
    req["preview"] = {{"ext", ext}, {"data", base64_encode(bytes)}};
  }
  if (!req.contains("set") && !req.contains("preview"))
    return core::fail(ErrorCode::invalid_argument, "nothing to write",
                      "pass --set KEY=VALUE or --preview IMAGE");
  TRY_ASSIGN(auto answer, pod_request(exec, req));
  return answer.value("written", std::vector<std::string>{});
}

core::Result<std::vector<std::string>> write_sidecars(
    const PodExec& exec,
    const std::string& root,
    const std::string& path,
    const std::map<std::string, std::string>& files,
    const std::optional<std::pair<std::string, std::string>>& preview) {
  json req = {{"op", "meta"}, {"root", root}, {"path", path}, {"files", files}};
  if (preview)
    req["preview"] = {
        {"ext", preview->first}, {"data", base64_encode(preview->second)}, {"only_if_none", true}};
  TRY_ASSIGN(auto answer, pod_request(exec, req));
  return answer.value("written", std::vector<std::string>{});
}

core::Result<std::vector<std::string>> remove_models(const PodExec& exec,
                                                     const std::string& root,
                                                     const std::vector<std::string>& paths) {
  TRY_ASSIGN(auto answer, pod_request(exec, {{"op", "rm"}, {"root", root}, {"paths", paths}}));
  return answer.value("removed", std::vector<std::string>{});
}

}  // namespace autopod::models
