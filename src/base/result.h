// Result<T>: the return type of every fallible function in amibake.
//
// std::expected is not usable with GCC 12 in C++20 mode, so this is a small
// stand-in with the same shape (has_value, value, error, operator*, operator->)
// so it can be swapped for std::expected later without touching callers.
// Errors carry a message built as "subject: what failed: cause" (STYLE.md) and an
// optional hint saying what the user should do next.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace amibake {

struct Error {
  std::string message;  // "snap-0abc: PutSnapshotBlock 17: checksum mismatch"
  std::string hint;     // what to do next, when we know it; may be empty
  int code = 1;         // process exit code this error maps to when it reaches main
  // Filled in for errors answered by an AWS service (empty/0 otherwise), so callers
  // can branch on them: e.g. treat "InvalidAMIID.NotFound" as "absent".
  std::string aws_code;    // "InvalidAMIID.NotFound", "ThrottlingException", ...
  int http_status = 0;     // HTTP status of the answer, 0 when there was none
  std::string request_id;  // x-amzn-RequestId / <RequestID>, for support tickets

  // Returns a copy whose message is "context: <message>".
  Error wrap(const std::string& context) const {
    Error e = *this;
    e.message = context + ": " + message;
    return e;
  }
  // Returns message, followed by "\n  hint: ..." when a hint is present.
  std::string describe() const { return hint.empty() ? message : message + "\n  hint: " + hint; }
};

// Builds an Error; `hint` says what to do next.
inline Error make_error(std::string message, std::string hint = {}, int code = 1) {
  Error e;
  e.message = std::move(message);
  e.hint = std::move(hint);
  e.code = code;
  return e;
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}      // NOLINT(google-explicit-constructor)

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { assert(has_value()); return std::get<0>(v_); }
  const T& value() const& { assert(has_value()); return std::get<0>(v_); }
  // By value, not T&&: `for (auto& x : f().value())` must not dangle once the
  // temporary Result dies at the end of the full expression.
  T value() && { assert(has_value()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { assert(!has_value()); return std::get<1>(v_); }
  Error& error() { assert(!has_value()); return std::get<1>(v_); }

  // Returns the value, or `fallback` when this holds an error.
  T value_or(T fallback) const { return has_value() ? std::get<0>(v_) : std::move(fallback); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { assert(!ok_); return error_; }
  Error& error() { assert(!ok_); return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status ok() { return {}; }

}  // namespace amibake

// Propagates an error from an expression returning Result<...>.
#define AMIBAKE_TRY(expr)                         \
  do {                                            \
    auto amibake_try_r_ = (expr);                 \
    if (!amibake_try_r_) return amibake_try_r_.error(); \
  } while (0)

#define AMIBAKE_CONCAT_INNER(a, b) a##b
#define AMIBAKE_CONCAT(a, b) AMIBAKE_CONCAT_INNER(a, b)
// AMIBAKE_ASSIGN(auto x, f()) declares x from f()'s value or returns its error.
#define AMIBAKE_ASSIGN(decl, expr) AMIBAKE_ASSIGN_IMPL(AMIBAKE_CONCAT(amibake_r_, __LINE__), decl, expr)
#define AMIBAKE_ASSIGN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                         \
  if (!tmp) return tmp.error();              \
  decl = std::move(tmp).value()
