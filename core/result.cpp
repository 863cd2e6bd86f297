#include "core/result.hpp"

namespace autopod::core {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::auth: return "auth";
    case ErrorCode::network: return "network";
    case ErrorCode::timeout: return "timeout";
    case ErrorCode::rate_limited: return "rate_limited";
    case ErrorCode::remote: return "remote";
    case ErrorCode::no_capacity: return "no_capacity";
    case ErrorCode::payment: return "payment";
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::io: return "io";
    case ErrorCode::protocol: return "protocol";
    case ErrorCode::cancelled: return "cancelled";
    case ErrorCode::unsupported: return "unsupported";
    case ErrorCode::execution_failed: return "execution_failed";
    case ErrorCode::interrupted: return "interrupted";
    case ErrorCode::partial: return "partial";
    case ErrorCode::internal: return "internal";
  }
  return "internal";
}

bool Error::retryable() const {
  switch (code) {
    case ErrorCode::network:
    case ErrorCode::timeout:
    case ErrorCode::rate_limited:
      return true;
    case ErrorCode::remote:
      return http_status >= 500 || http_status == 0;
    default:
      return false;
  }
}

std::string Error::describe() const {
  std::string out = "error: " + message;
  if (!hint.empty()) out += "\nhint: " + hint;
  return out;
}

Error make_error(ErrorCode code, std::string message, std::string hint) {
  Error e;
  e.code = code;
  e.message = std::move(message);
  e.hint = std::move(hint);
  return e;
}

}  // namespace autopod::core
