#pragma once
// Short random identifiers (tunnel ids, WebSocket client ids, the fakes' ids). Not for secrets.

#include <cstddef>
#include <string>

namespace autopod::core {

// `n` random lowercase hexadecimal digits. Thread-safe.
std::string random_hex(std::size_t n);

}  // namespace autopod::core
