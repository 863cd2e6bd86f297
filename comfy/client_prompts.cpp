// ComfyClient's prompts and files: POST /prompt and its errors, uploads, output references
// and downloads through /view (../shared/reference/comfyui-api.md §2, §3, §6).

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "comfy/client.hpp"
#include "comfy/json_fields.hpp"
#include "core/fs.hpp"
#include "core/url.hpp"

namespace autopod::comfy {

using core::ErrorCode;
using core::fail;
using fields::str;
using nlohmann::json;

namespace {

// One path component made safe: no separators, no control characters, not "." or "..", no
// leading dot (hidden files), at most 200 bytes.
std::string clean_component(std::string s) {
  std::string out;
  for (unsigned char c : s)
    out += (c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == ':') ? '_' : static_cast<char>(c);
  while (!out.empty() && (out.front() == '.' || out.front() == ' ')) out.erase(out.begin());
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > 200) out = out.substr(out.size() - 200);
  return out;
}

}  // namespace

std::string format_prompt_errors(const json& body) {
  std::string out;
  if (body.contains("error")) {
    const json& e = body["error"];
    if (e.is_string()) {
      out = e.get<std::string>();  // servers before 0.3.28: "error": "no prompt"
    } else if (e.is_object()) {
      out = str(e, "message");
      std::string details = str(e, "details");
      if (!details.empty() && details != out) out += " (" + details + ")";
    }
  }
  if (auto ne = body.find("node_errors"); ne != body.end() && ne->is_object()) {
    for (const auto& [node, entry] : ne->items()) {
      std::string cls = str(entry, "class_type");
      auto errors = entry.find("errors");
      if (errors == entry.end() || !errors->is_array()) continue;
      for (const auto& err : *errors) {
        std::string input;
        if (auto x = err.find("extra_info"); x != err.end() && x->is_object()) input = str(*x, "input_name");
        out += "\n  node " + node + (cls.empty() ? "" : " (" + cls + ")") +
               (input.empty() ? "" : " input " + input) + ": " + str(err, "message");
        std::string details = str(err, "details");
        if (!details.empty() && details != input) out += ": " + details;
      }
    }
  }
  return out.empty() ? body.dump().substr(0, 300) : out;
}

std::vector<json> output_files(const json& entry) {
  std::vector<json> files;
  auto outputs = entry.find("outputs");
  if (outputs == entry.end() || !outputs->is_object()) return files;
  for (const auto& [node, ui] : outputs->items()) {
    if (!ui.is_object()) continue;
    for (const auto& [key, list] : ui.items()) {
      if (!list.is_array()) continue;
      for (const auto& f : list)
        if (f.is_object() && f.contains("filename") && f["filename"].is_string()) {
          json ref = f;
          ref["node"] = node;
          files.push_back(std::move(ref));
        }
    }
  }
  return files;
}

std::filesystem::path local_output_path(const std::filesystem::path& dir, const json& ref) {
  std::filesystem::path out = dir;
  std::string sub = str(ref, "subfolder");
  std::string part;
  auto flush = [&] {
    std::string c = clean_component(part);
    if (!c.empty()) out /= c;
    part.clear();
  };
  for (char c : sub) {
    if (c == '/' || c == '\\') flush();
    else part += c;
  }
  flush();
  std::string name = str(ref, "filename");
  auto slash = name.find_last_of("/\\");
  if (slash != std::string::npos) name = name.substr(slash + 1);
  name = clean_component(name);
  if (name.empty()) name = "output";
  return out / name;
}

core::Result<nlohmann::ordered_json> ComfyClient::object_info() {
  TRY_ASSIGN(auto response, request("GET", "/object_info"));
  auto body = nlohmann::ordered_json::parse(response.body, nullptr, false);
  if (body.is_discarded()) return fail(ErrorCode::protocol, "comfyui sent malformed JSON for GET /object_info");
  if (!body.is_object()) return fail(ErrorCode::protocol, "/object_info is not an object");
  return body;
}

core::Result<Submitted> ComfyClient::submit(const json& prompt, const std::string& client_id,
                                            const json& extra_data) {
  json body = {{"prompt", prompt}, {"client_id", client_id}};
  if (!extra_data.empty()) body["extra_data"] = extra_data;
  core::HttpRequest req;
  req.method = "POST";
  req.url = m_base + "/prompt";
  req.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  req.headers.emplace_back("Content-Type", "application/json");
  // Not re-sent on a dead kept-alive connection: a prompt must not be queued twice.
  req.fresh_connection = true;
  TRY_ASSIGN(auto r, send(req));
  json answer = json::parse(r.body, nullptr, false);
  if (r.status == 400 && answer.is_object())
    return fail(ErrorCode::invalid_argument, "comfyui rejected the workflow: " + format_prompt_errors(answer),
                "fix the inputs named above (autopod comfy run --set NODE.INPUT=VALUE changes one)");
  if (r.status != 200 || !answer.is_object() || !answer.contains("prompt_id")) {
    core::Error e;
    e.http_status = r.status;
    e.code = r.status >= 500 ? ErrorCode::remote : ErrorCode::protocol;
    e.message = "comfyui answered POST /prompt with http " + std::to_string(r.status) +
                (r.body.empty() ? "" : ": " + r.body.substr(0, 300));
    if (r.status == 500)
      e.hint = "the server raised while reading the workflow: is it an API-format workflow?";
    return fail(e);
  }
  Submitted s;
  s.prompt_id = answer["prompt_id"].is_string() ? answer["prompt_id"].get<std::string>() : answer["prompt_id"].dump();
  if (answer.contains("number") && answer["number"].is_number()) s.number = answer["number"].get<double>();
  s.node_errors = answer.value("node_errors", json::object());
  return s;
}

core::Result<std::string> ComfyClient::upload(const std::filesystem::path& file) {
  TRY_ASSIGN(auto data, core::read_file(file));
  std::string boundary = "autopod-" + std::to_string(std::hash<std::string>{}(data + file.string()));
  std::string name = file.filename().string();
  std::string quoted;
  for (char c : name) quoted += (c == '"' || c == '\r' || c == '\n') ? '_' : c;
  std::string body = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"" +
                     quoted + "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + "\r\n--" +
                     boundary + "\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput\r\n--" +
                     boundary + "--\r\n";
  core::HttpRequest req;
  req.method = "POST";
  req.url = m_base + "/upload/image";
  req.body = std::move(body);
  req.timeout = std::chrono::minutes(10);
  req.headers.emplace_back("Content-Type", "multipart/form-data; boundary=" + boundary);
  auto r = m_transport->send(req);
  if (!r) return fail(std::move(r).error());
  if (r->status == 413)
    return fail(ErrorCode::invalid_argument, "comfyui refused to take " + file.string() + ": too large (" + r->body + ")",
                "start ComfyUI with a larger --max-upload-size (MB)");
  json answer = json::parse(r->body, nullptr, false);
  if (r->status != 200 || !answer.is_object() || !answer.contains("name"))
    return fail(ErrorCode::remote, "comfyui answered the upload of " + file.string() + " with http " +
                                       std::to_string(r->status) + (r->body.empty() ? "" : ": " + r->body.substr(0, 200)));
  std::string sub = str(answer, "subfolder");
  return sub.empty() ? str(answer, "name") : sub + "/" + str(answer, "name");
}

core::Status ComfyClient::download(const json& ref, const std::filesystem::path& dest) {
  std::string url = m_base + "/view?filename=" + core::url_encode(str(ref, "filename")) +
                    "&subfolder=" + core::url_encode(str(ref, "subfolder")) +
                    "&type=" + core::url_encode(ref.value("type", "output"));
  std::error_code ec;
  std::filesystem::create_directories(dest.parent_path(), ec);
  std::filesystem::path part = dest;
  part += ".part";
  std::FILE* f = std::fopen(part.c_str(), "wb");
  if (!f) return fail(ErrorCode::io, "cannot write " + part.string() + ": " + std::strerror(errno));
  core::HttpRequest req;
  req.url = url;
  req.timeout = std::chrono::minutes(30);
  req.sink = [f](std::string_view chunk) { return std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size(); };
  auto r = m_transport->send(req);
  bool flushed = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  std::fclose(f);
  auto failed = [&](core::Error e) {
    std::filesystem::remove(part, ec);
    return fail(std::move(e));
  };
  if (!r) return failed(std::move(r).error());
  if (r->status != 200)
    return failed(core::make_error(
        r->status == 404 ? ErrorCode::not_found : ErrorCode::remote,
        "comfyui answered GET /view for " + str(ref, "subfolder") + (str(ref, "subfolder").empty() ? "" : "/") +
            str(ref, "filename") + " with http " + std::to_string(r->status),
        r->status == 400 || r->status == 403 ? "the server refuses file names with .. or a subfolder outside its directory"
                                              : "temp files (previews) are wiped when ComfyUI restarts"));
  if (!flushed) return failed(core::make_error(ErrorCode::io, "cannot write " + part.string()));
  std::filesystem::rename(part, dest, ec);
  if (ec) return failed(core::make_error(ErrorCode::io, "cannot rename " + part.string() + ": " + ec.message()));
  return {};
}

}  // namespace autopod::comfy
