// GET /v1/outputs/{taskId}/{file}: a saved output with its Content-Type, whole or a byte range.

#include <fstream>
#include <regex>

#include "agent/service/api.hpp"
#include "agent/service/progress.hpp"

namespace autopod::agent::service {

namespace fs = std::filesystem;

namespace {

std::string content_type(const fs::path& file) {
  static const std::map<std::string, std::string> types = {
      {".png", "image/png"},   {".jpg", "image/jpeg"},       {".jpeg", "image/jpeg"}, {".webp", "image/webp"},
      {".gif", "image/gif"},   {".mp4", "video/mp4"},        {".webm", "video/webm"}, {".wav", "audio/wav"},
      {".mp3", "audio/mpeg"},  {".flac", "audio/flac"},      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"}, {".svg", "image/svg+xml"}};
  std::string ext = file.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = types.find(ext);
  return it == types.end() ? "application/octet-stream" : it->second;
}

bool plain_relative(const std::string& rel) {
  if (rel.empty() || rel.front() == '/' || rel.find('\0') != std::string::npos || rel.find('\\') != std::string::npos)
    return false;
  for (const auto& part : fs::path(rel))
    if (part == ".." || part == "." || part.empty()) return false;
  return true;
}

}  // namespace

Reply serve_output(const fs::path& outputs, const std::string& task_id, const std::string& file,
                   const std::string& range) {
  static const std::regex id_shape("[0-9a-f]{8,64}");
  std::string rel;
  if (!std::regex_match(task_id, id_shape) || !decode_segment(file, rel) || !plain_relative(rel))
    return error_reply(404, "no such output", "task " + task_id + ", file " + file);
  fs::path dir = outputs / task_id;
  std::error_code ec;
  fs::path base = fs::canonical(dir, ec);
  fs::path path = ec ? fs::path() : fs::canonical(dir / rel, ec);
  // Symlinks out of the task's directory are not followed out of it.
  if (ec || !fs::is_regular_file(path) || path.string().rfind(base.string() + "/", 0) != 0)
    return error_reply(404, "no such output", "task " + task_id + ", file " + rel);
  auto size = fs::file_size(path, ec);
  if (ec) return error_reply(404, "no such output", ec.message());
  std::uint64_t first = 0, last = size ? size - 1 : 0;
  int status = 200;
  std::smatch m;
  if (!range.empty()) {
    static const std::regex one("bytes=(\\d*)-(\\d*)");
    if (!std::regex_match(range, m, one) || (m[1].length() == 0 && m[2].length() == 0))
      return Reply{416, "application/json", R"({"error":{"message":"unsupported range","details":"one range: bytes=a-b"}})",
                   {{"Content-Range", "bytes */" + std::to_string(size)}}};
    if (m[1].length() == 0) {  // the last N bytes
      std::uint64_t n = std::stoull(m[2]);
      first = n >= size ? 0 : size - n;
    } else {
      first = std::stoull(m[1]);
      if (m[2].length()) last = std::min<std::uint64_t>(std::stoull(m[2]), last);
    }
    if (first >= size || first > last)
      return Reply{416, "application/json", R"({"error":{"message":"range not satisfiable","details":""}})",
                   {{"Content-Range", "bytes */" + std::to_string(size)}}};
    status = 206;
  }
  std::string body(size ? last - first + 1 : 0, '\0');
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(first));
  if (!body.empty() && !in.read(body.data(), static_cast<std::streamsize>(body.size())))
    return error_reply(500, "cannot read the output", path.filename().string());
  Reply r{status, content_type(path), std::move(body), {{"Accept-Ranges", "bytes"}}};
  if (status == 206)
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                                                std::to_string(size));
  return r;
}

}  // namespace autopod::agent::service
