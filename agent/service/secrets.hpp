#pragma once
// Internal to agent/service/: the agent's bearer token and webhook secret, and their checks.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace autopod::agent::service {

// The secret in `file`, made on first use (32 random bytes as hex, file mode 0600). io error when
// it can be neither read nor written.
core::Result<std::string> load_or_make_secret(const std::filesystem::path& file);

// Equal without leaking where they differ (CRYPTO_memcmp); different lengths are unequal.
bool constant_time_equal(std::string_view a, std::string_view b);

// Lowercase hex of HMAC-SHA256(key, message).
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

// The X-Autopod-Signature header value: "t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
std::string webhook_signature(std::string_view secret, std::int64_t unix_time, std::string_view body);

}  // namespace autopod::agent::service
