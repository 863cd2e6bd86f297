#pragma once
// Result<T> and Error: how every fallible operation in autopod reports failure.
// Member names follow std::expected so the type can become it under C++23.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace autopod::core {

enum class ErrorCode {
  invalid_argument,  // the user's input or config is wrong; retrying will not help
  not_found,
  auth,          // credentials missing or refused
  network,       // connection failed or the answer was lost
  timeout,
  rate_limited,  // 429
  remote,        // the service answered with an error (5xx, 4xx not covered above)
  no_capacity,   // the cloud has no machine for this request right now
  payment,       // the account balance cannot pay for it (402)
  conflict,      // not valid in the resource's current state (409)
  io,
  protocol,      // the peer answered something we cannot parse
  cancelled,
  unsupported,   // the provider cannot do this operation
  execution_failed,  // the remote job ran and failed (a ComfyUI node raised)
  interrupted,       // the remote job was interrupted or removed before it finished
  partial,           // the remote job succeeded without some of what was asked (outputs dropped)
  internal,
};

const char* to_string(ErrorCode code);

// What went wrong (message: what happened and where), and what the user can do (hint).
struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;
  std::string hint;
  int http_status = 0;       // set when the error came from an HTTP answer
  int retry_after_secs = -1; // from a Retry-After header, -1 when absent

  // Whether the same request may succeed if sent again later.
  bool retryable() const;
  // "error: <message>" plus "\nhint: <hint>" when there is one.
  std::string describe() const;
};

Error make_error(ErrorCode code, std::string message, std::string hint = {});

struct Unexpected {
  Error error;
};
inline Unexpected fail(ErrorCode code, std::string message, std::string hint = {}) {
  return Unexpected{make_error(code, std::move(message), std::move(hint))};
}
inline Unexpected fail(Error e) { return Unexpected{std::move(e)}; }

// A value or an Error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : m_v(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Result(Unexpected u) : m_v(std::in_place_index<1>, std::move(u.error)) {}  // NOLINT
  Result(Error e) : m_v(std::in_place_index<1>, std::move(e)) {}  // NOLINT

  bool has_value() const { return m_v.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(check()); }
  const T& value() const& { return std::get<0>(check()); }
  T&& value() && { return std::get<0>(std::move(check())); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const& { return std::get<1>(m_v); }
  Error&& error() && { return std::get<1>(std::move(m_v)); }

 private:
  std::variant<T, Error>& check() {
    if (m_v.index() != 0) {
      std::fprintf(stderr, "bug: value() on a failed Result: %s\n",
                   std::get<1>(m_v).message.c_str());
      std::abort();
    }
    return m_v;
  }
  const std::variant<T, Error>& check() const { return const_cast<Result*>(this)->check(); }
  std::variant<T, Error> m_v;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Unexpected u) : m_error(std::move(u.error)), m_failed(true) {}  // NOLINT
  Result(Error e) : m_error(std::move(e)), m_failed(true) {}  // NOLINT
  bool has_value() const { return !m_failed; }
  explicit operator bool() const { return !m_failed; }
  void value() const {}
  const Error& error() const& { return m_error; }
  Error&& error() && { return std::move(m_error); }

 private:
  Error m_error;
  bool m_failed = false;
};

using Status = Result<void>;

}  // namespace autopod::core

// Bugs, not failures: stays on in release builds.
#define ASSERT(cond)                                                                   \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "bug: assertion failed: %s at %s:%d\n", #cond, __FILE__, \
                   __LINE__);                                                          \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

#define AUTOPOD_CONCAT_(a, b) a##b
#define AUTOPOD_CONCAT(a, b) AUTOPOD_CONCAT_(a, b)

// Propagate a failed Result from the enclosing function.
#define TRY(expr)                                                           \
  do {                                                                      \
    auto&& autopod_try_r_ = (expr);                                         \
    if (!autopod_try_r_) return ::autopod::core::fail(autopod_try_r_.error()); \
  } while (0)

#define TRY_ASSIGN_IMPL_(tmp, lhs, expr)                      \
  auto tmp = (expr);                                          \
  if (!tmp) return ::autopod::core::fail(std::move(tmp).error()); \
  lhs = std::move(tmp).value()

// TRY_ASSIGN(auto pod, provider.get_pod(id));
#define TRY_ASSIGN(lhs, expr) TRY_ASSIGN_IMPL_(AUTOPOD_CONCAT(autopod_try_, __LINE__), lhs, expr)
