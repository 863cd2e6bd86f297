#pragma once
// Files that must never be seen half-written.

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace autopod::core {

// Writes `content` to a temp file beside `path`, fsyncs it, renames it over `path` and
// fsyncs the directory. Readers see the old or the new content, never a mix.
Status write_file_atomic(const std::filesystem::path& path, std::string_view content,
                         mode_t mode = 0644);

// The whole file; not_found when it does not exist, io on other failures.
Result<std::string> read_file(const std::filesystem::path& path);

// Creates the directory and its parents with `mode` where missing.
Status ensure_dir(const std::filesystem::path& dir, mode_t mode = 0700);

// The permission bits of an existing file, or -1.
int file_mode(const std::filesystem::path& path);

}  // namespace autopod::core
