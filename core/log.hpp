#pragma once
// Logging setup: one named spdlog logger per library, all writing to the same sinks.

#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>
#include <string>

#include "core/result.hpp"

namespace autopod::core {

// The logger for a library ("core", "runpod", "tunnel", ...), created on first use.
std::shared_ptr<spdlog::logger> logger(const std::string& name);

// Sends every logger to stderr (and to `file` when given, without colour) at `level`
// ("trace".."off"). Fails with invalid_argument on an unknown level name.
Status setup_logging(const std::string& level, const std::filesystem::path& file = {});

}  // namespace autopod::core
