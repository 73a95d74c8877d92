#include "keyline/common/status.h"

namespace keyline {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string message(context);
  message += ": ";
  message += message_;
  return Status(code_, std::move(message));
}

std::ostream& operator<<(std::ostream& os, const Status& status) {
  return os << status.ToString();
}

std::ostream& operator<<(std::ostream& os, StatusCode code) { return os << StatusCodeName(code); }

#define KEYLINE_DEFINE_ERROR_(Name, Code) \
  Status Name(std::string message) { return Status(StatusCode::Code, std::move(message)); }

KEYLINE_DEFINE_ERROR_(InvalidArgumentError, kInvalidArgument)
KEYLINE_DEFINE_ERROR_(NotFoundError, kNotFound)
KEYLINE_DEFINE_ERROR_(AlreadyExistsError, kAlreadyExists)
KEYLINE_DEFINE_ERROR_(FailedPreconditionError, kFailedPrecondition)
KEYLINE_DEFINE_ERROR_(PermissionDeniedError, kPermissionDenied)
KEYLINE_DEFINE_ERROR_(UnauthenticatedError, kUnauthenticated)
KEYLINE_DEFINE_ERROR_(ResourceExhaustedError, kResourceExhausted)
KEYLINE_DEFINE_ERROR_(OutOfRangeError, kOutOfRange)
KEYLINE_DEFINE_ERROR_(UnavailableError, kUnavailable)
KEYLINE_DEFINE_ERROR_(DeadlineExceededError, kDeadlineExceeded)
KEYLINE_DEFINE_ERROR_(AbortedError, kAborted)
KEYLINE_DEFINE_ERROR_(DataLossError, kDataLoss)
KEYLINE_DEFINE_ERROR_(UnimplementedError, kUnimplemented)
KEYLINE_DEFINE_ERROR_(InternalError, kInternal)

#undef KEYLINE_DEFINE_ERROR_

}  // namespace keyline
