#pragma once
// Optional fields of ComfyUI's JSON, internal to comfy/: fields arrive over versions and custom
// nodes add their own, so a field that is missing or of another type reads as empty.

#include <string>

#include <nlohmann/json.hpp>

namespace autopod::comfy::fields {

inline std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

inline double num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

}  // namespace autopod::comfy::fields
