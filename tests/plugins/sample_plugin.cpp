// A provider plugin as a third party would write one: the C entry point of plugin_abi.h over
// an in-memory set of pods. Built by the tests and loaded with dlopen.

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "providers/plugin_abi.h"

namespace {

using nlohmann::json;

struct Instance {
  json config;  // config.yaml's plugins.static section (plus "home")
  std::map<std::string, json> pods;
  int next = 1;
};

char* dup(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

json error(const std::string& code, const std::string& message) {
  return {{"ok", false}, {"error", {{"code", code}, {"message", message}, {"hint", "static plugin"}}}};
}

json handle(Instance& self, const json& req) {
  std::string op = req.at("op");
  if (op == "list_pods") {
    json list = json::array();
    for (const auto& [id, p] : self.pods) list.push_back(p);
    return {{"ok", true}, {"result", list}};
  }
  if (op == "get_pod" || op == "start_pod") {
    auto it = self.pods.find(req.value("id", ""));
    if (it == self.pods.end()) return error("not_found", "no pod " + req.value("id", ""));
    return {{"ok", true}, {"result", it->second}};
  }
  if (op == "create_pod") {
    std::string id = "s" + std::to_string(self.next++);
    json pod = {{"id", id}, {"name", req["spec"]["name"]}, {"status", "running"},
                {"image", self.config.value("image", req["spec"].value("image", ""))},
                {"gpu_type", "static-gpu"}, {"gpu_count", 1},
                {"ssh", {{"host", "127.0.0.1"}, {"port", 22}, {"user", "root"}}}};
    self.pods[id] = pod;
    return {{"ok", true}, {"result", pod}};
  }
  if (op == "terminate_pod") {
    self.pods.erase(req.value("id", ""));
    return {{"ok", true}};
  }
  if (op == "list_volumes") return {{"ok", true}, {"result", json::array()}};
  return error("unsupported", "static plugin cannot " + op);
}

void* create(const char* config, char** error) {
  try {
    auto self = std::make_unique<Instance>();
    self->config = json::parse(config);
    return self.release();
  } catch (const std::exception& e) {
    *error = dup(std::string("bad config: ") + e.what());
    return nullptr;
  }
}

char* call(void* instance, const char* request) {
  try {
    return dup(handle(*static_cast<Instance*>(instance), json::parse(request)).dump());
  } catch (const std::exception& e) {
    return dup(error("internal", e.what()).dump());
  }
}

void destroy(void* instance) { delete static_cast<Instance*>(instance); }
void free_string(char* s) { std::free(s); }

const autopod_provider_plugin_v1 k_plugin = {AUTOPOD_PLUGIN_ABI_VERSION, PLUGIN_NAME, create,
                                             call, destroy, free_string};

}  // namespace

extern "C" const autopod_provider_plugin_v1* autopod_provider_plugin(void) {
#ifdef PLUGIN_WRONG_ABI
  static autopod_provider_plugin_v1 wrong = k_plugin;
  wrong.abi_version = 99;
  return &wrong;
#elif defined(PLUGIN_THROWS)
  static autopod_provider_plugin_v1 throwing = k_plugin;
  throwing.call = [](void*, const char*) -> char* { throw std::runtime_error("plugin bug"); };
  return &throwing;
#elif defined(PLUGIN_THROWS_AT_ENTRY)
  throw std::runtime_error("cannot even start");
#else
  return &k_plugin;
#endif
}
