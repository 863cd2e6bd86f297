#pragma once
// Small text helpers that several libraries need; joins use fmt::join.

#include <chrono>
#include <string>
#include <string_view>

namespace autopod::core {

// ASCII lowercase.
std::string lowercase(std::string_view s);

// "2026-11-25T12:34:56Z" (UTC, whole seconds) for `t`, default now.
std::string iso_time(std::chrono::system_clock::time_point t = std::chrono::system_clock::now());

// "0.4 s", "12.0 s", "3 min 05 s": an elapsed time for messages.
std::string format_seconds(std::chrono::milliseconds elapsed);

}  // namespace autopod::core
