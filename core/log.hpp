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

// The most a daemon's log may hold: the file rotates to file.1, file.2, file.3 at this size
// and older text is dropped, so a daemon running for weeks stays within about 40 MiB.
inline constexpr std::size_t k_daemon_log_bytes = 10u << 20;
inline constexpr std::size_t k_daemon_log_files = 3;

// For long-running detached processes (the tunnel daemon, the agent): every logger writes to
// `file` only (their stderr goes nowhere), without colour, at `level`, each line flushed as it
// is logged so the file shows what the process is doing while it runs; capped by rotation as
// above. invalid_argument on an unknown level; io when the file cannot be opened.
Status setup_daemon_logging(const std::string& level, const std::filesystem::path& file);

}  // namespace autopod::core
