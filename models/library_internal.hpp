#pragma once
// Internal to models/: the model library's pieces shared by library.cpp and library_pod.cpp.

#include <nlohmann/json.hpp>
#include <string>

#include "models/library.hpp"

namespace autopod::models {

std::string base64_decode(const std::string& text);  // empty on bad input
std::string base64_encode(const std::string& bytes);

// One file of the pod's "headers" answer, parsed and recognised.
LibraryFile describe_file(const nlohmann::json& item);

// True when the pod sent only a safetensors file's 8 length bytes because its header is larger
// than `first_read` (and no larger than k_header_read_cap): it needs a second request.
bool needs_full_header(const nlohmann::json& item, std::uint64_t first_read);

}  // namespace autopod::models
