// Status and StatusOr<T>: the one error type of the project.
//
// Every fallible function returns Status or StatusOr<T>; exceptions are caught at module edges.
// Messages say what failed, on what, and what to do: "pks.toml: [plant] id is missing".
#pragma once

#include <cassert>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace keyline {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong (bad hex, malformed message, bad config)
  kNotFound,            // a named thing does not exist (unknown product, unknown peer)
  kAlreadyExists,       // creating something that is already there
  kFailedPrecondition,  // the system is not in a state where this can happen (out of stock)
  kPermissionDenied,    // the caller is known but not allowed
  kUnauthenticated,     // the caller could not be identified (unregistered key, bad signature)
  kResourceExhausted,   // a limit was hit (disk full, quota, frame size)
  kOutOfRange,          // a number outside its allowed range
  kUnavailable,         // try again later (peer down, link closed)
  kDeadlineExceeded,    // a time-out
  kAborted,             // a concurrent change won; retry the whole operation
  kDataLoss,            // stored or received bytes are corrupt (tampered file, bad MAC)
  kUnimplemented,       // the backend lacks this capability
  kInternal,            // a bug or a library failure we did not expect
};

// Short stable name ("INVALID_ARGUMENT"), for logs and JSON.
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "INVALID_ARGUMENT: pks.toml: [plant] id is missing", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>"; OK stays OK.
  Status WithContext(std::string_view context) const;

  // Explicitly ignore a Status where failure truly does not matter (say why at the call site).
  void IgnoreError() const {}

  friend bool operator==(const Status&, const Status&) = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

std::ostream& operator<<(std::ostream& os, const Status& status);
std::ostream& operator<<(std::ostream& os, StatusCode code);

// Constructors named for their code, so call sites read as prose.
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status FailedPreconditionError(std::string message);
Status PermissionDeniedError(std::string message);
Status UnauthenticatedError(std::string message);
Status ResourceExhaustedError(std::string message);
Status OutOfRangeError(std::string message);
Status UnavailableError(std::string message);
Status DeadlineExceededError(std::string message);
Status AbortedError(std::string message);
Status DataLossError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);

// Either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): implicit by design, like absl::StatusOr.
  StatusOr(Status status) : state_(std::move(status)) {
    assert(!std::get<Status>(state_).ok() && "StatusOr built from an OK Status has no value");
    if (std::get<Status>(state_).ok()) {
      state_ = Status(StatusCode::kInternal, "StatusOr constructed from OK status without a value");
    }
  }
  StatusOr(const T& value) : state_(value) {}                // NOLINT
  StatusOr(T&& value) : state_(std::move(value)) {}          // NOLINT
  template <typename U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, Status> &&
             !std::is_same_v<std::decay_t<U>, StatusOr<T>> && !std::is_same_v<std::decay_t<U>, T>)
  StatusOr(U&& value) : state_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(state_); }

  // The error, or OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(state_); }

  // Precondition: ok().
  const T& value() const& { return std::get<T>(state_); }
  T& value() & { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }

  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  std::variant<Status, T> state_;
};

namespace internal {
inline Status AsStatus(const Status& status) { return status; }
template <typename T>
Status AsStatus(const StatusOr<T>& status_or) {
  return status_or.status();
}
}  // namespace internal

}  // namespace keyline

#define KEYLINE_CONCAT_INNER_(a, b) a##b
#define KEYLINE_CONCAT_(a, b) KEYLINE_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function if `expr` (a Status or StatusOr) is not OK.
#define RETURN_IF_ERROR(expr)                                                       \
  do {                                                                              \
    ::keyline::Status keyline_status_ = ::keyline::internal::AsStatus((expr));      \
    if (!keyline_status_.ok()) return keyline_status_;                              \
  } while (false)

// ASSIGN_OR_RETURN(auto x, FunctionReturningStatusOr());  declares/assigns x or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(KEYLINE_CONCAT_(keyline_status_or_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
