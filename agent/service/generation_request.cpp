// Generations: checking a POST /v1/generations body and making its task (see generations.hpp).

#include <openssl/evp.h>

#include <regex>

#include "agent/service/generations.hpp"
#include "comfy/workflow.hpp"
#include "core/fs.hpp"
#include "core/random.hpp"

namespace autopod::agent::service {

namespace fs = std::filesystem;
using core::ErrorCode;
using core::fail;
using nlohmann::json;

namespace {

core::Result<std::string> base64_decode(const std::string& text, const std::string& where) {
  std::string clean;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
  if (clean.size() % 4 != 0) return fail(ErrorCode::invalid_argument, where + " is not base64");
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return fail(ErrorCode::invalid_argument, where + " is not base64");
  std::size_t pad = 0;
  for (std::size_t i = clean.size(); i > 0 && clean[i - 1] == '='; --i) ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

bool safe_name(const std::string& name) {
  static const std::regex ok("[A-Za-z0-9][A-Za-z0-9._ -]{0,127}");
  return std::regex_match(name, ok) && name.find("..") == std::string::npos;
}

core::Result<std::vector<std::string>> sets_of(const json& set) {
  std::vector<std::string> out;
  if (set.is_null()) return out;
  if (set.is_array()) {
    for (const auto& s : set) {
      if (!s.is_string()) return fail(ErrorCode::invalid_argument, "set: each item must be a \"NODE.INPUT=VALUE\" string");
      out.push_back(s.get<std::string>());
    }
    return out;
  }
  if (set.is_object()) {
    for (const auto& [k, v] : set.items()) out.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
    return out;
  }
  return fail(ErrorCode::invalid_argument, "set must be an array of \"NODE.INPUT=VALUE\" or an object {\"NODE.INPUT\": value}");
}

// Inputs are files on the agent's machine (a path) or sent inline ({filename, data: base64}),
// written under `dir`.
core::Result<std::vector<std::string>> inputs_of(const json& inputs, const fs::path& dir) {
  std::vector<std::string> out;
  if (inputs.is_null()) return out;
  if (!inputs.is_array()) return fail(ErrorCode::invalid_argument, "inputs must be an array");
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const json& in = inputs[i];
    std::string where = "inputs[" + std::to_string(i) + "]";
    if (in.is_string()) {
      if (!fs::is_regular_file(in.get<std::string>()))
        return fail(ErrorCode::invalid_argument, where + ": no such file on the agent's machine: " + in.get<std::string>());
      out.push_back(in.get<std::string>());
      continue;
    }
    if (!in.is_object() || !in.contains("filename") || !in["filename"].is_string() || !in.contains("data") ||
        !in["data"].is_string())
      return fail(ErrorCode::invalid_argument, where + " must be a path or {\"filename\", \"data\": base64}");
    std::string name = in["filename"].get<std::string>();
    if (!safe_name(name)) return fail(ErrorCode::invalid_argument, where + ".filename is not a plain file name");
    TRY_ASSIGN(auto bytes, base64_decode(in["data"].get<std::string>(), where + ".data"));
    TRY(core::ensure_dir(dir));
    TRY(core::write_file_atomic(dir / name, bytes, 0600));
    out.push_back((dir / name).string());
  }
  return out;
}

}  // namespace

core::Result<comfy::WorkflowSource> workflow_source(const json& workflow, const fs::path& workflows,
                                                    const fs::path& base_dir) {
  if (workflow.is_object()) return comfy::make_source(workflow, "request body (workflow)", base_dir);
  if (!workflow.is_string())
    return fail(ErrorCode::invalid_argument, "workflow must be a workflow object or the name of a saved workflow");
  std::string name = workflow.get<std::string>();
  if (name.size() > 5 && name.substr(name.size() - 5) == ".json") name.resize(name.size() - 5);
  if (!safe_name(name)) return fail(ErrorCode::invalid_argument, "workflow name \"" + name + "\" is not a plain name");
  fs::path file = workflows / (name + ".json");
  if (!fs::exists(file))
    return fail(ErrorCode::invalid_argument, "no saved workflow \"" + name + "\"",
                "save it as " + file.string() + " or send the workflow object itself");
  return comfy::load_workflow(file);
}

core::Result<std::string> webhook_of(const json& body) {
  json webhook = body.value("webhook", json());
  if (webhook.is_null()) return std::string();
  std::string url = webhook.is_string() ? webhook.get<std::string>() : "";
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0)
    return fail(ErrorCode::invalid_argument, "webhook must be an http:// or https:// URL");
  return url;
}

core::Result<std::string> pod_of(const json& body) {
  json pod = body.value("pod", json());
  if (!pod.is_null() && !pod.is_string()) return fail(ErrorCode::invalid_argument, "pod must be a pod id or name");
  return pod.is_string() ? pod.get<std::string>() : std::string();
}

core::Result<Task> Generations::create(const json& body) {
  if (!body.is_object()) return fail(ErrorCode::invalid_argument, "the body must be a JSON object");
  if (!body.contains("workflow")) return fail(ErrorCode::invalid_argument, "workflow is required");
  Task t;
  t.id = core::random_hex(32);
  t.client_id = "autopod-agent-" + core::random_hex(16);
  fs::path inputs_dir = m_options.home.tasks() / (t.id + ".inputs");
  TRY_ASSIGN(auto source, workflow_source(body["workflow"], m_options.home.workflows(), inputs_dir));
  TRY_ASSIGN(auto sets, sets_of(body.value("set", json())));
  // API-format edits are checked now; the editor's format is checked once converted.
  if (source.format == comfy::WorkflowFormat::api) {
    json copy = source.workflow;
    for (const auto& s : sets) TRY(comfy::apply_set(copy, s));
  }
  json count = body.value("count", json(1));
  if (!count.is_number_integer() || count.get<int>() < 1 || count.get<int>() > 100)
    return fail(ErrorCode::invalid_argument, "count must be an integer from 1 to 100");
  TRY_ASSIGN(t.webhook, webhook_of(body));
  TRY_ASSIGN(t.pod, pod_of(body));
  TRY_ASSIGN(auto inputs, inputs_of(body.value("inputs", json()), inputs_dir));
  if (body["workflow"].is_string()) t.workflow_name = body["workflow"].get<std::string>();
  t.metadata = body.value("metadata", json());
  t.request = {{"workflow", body["workflow"]}, {"set", sets}, {"inputs", inputs}, {"count", count}};
  t.created_at = t.updated_at = std::chrono::system_clock::now();
  t.progress.current_step = "Waiting in queue...";
  TRY(m_store.add(t));
  return t;
}

}  // namespace autopod::agent::service
