// Converting RocksDB's status into ours. Internal to the broker (includes RocksDB headers).
#pragma once

#include <string>
#include <string_view>

#include <rocksdb/status.h>

#include "keyline/common/status.h"

namespace keyline::broker {

// `doing` says what failed ("outbox append to plant-a/records"); a full disk becomes
// RESOURCE_EXHAUSTED so that callers can tell "try again when space returns" from corruption.
inline Status FromRocks(const rocksdb::Status& s, std::string_view doing) {
  if (s.ok()) return Status::Ok();
  std::string message = std::string(doing) + ": " + s.ToString();
  if (s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace) {
    return ResourceExhaustedError(message + " (disk full: free space, the service resumes by itself)");
  }
  if (s.IsCorruption()) return DataLossError(message);
  if (s.IsNotFound()) return NotFoundError(message);
  if (s.IsInvalidArgument()) return InvalidArgumentError(message);
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) return UnavailableError(message);
  if (s.IsIOError()) return UnavailableError(message);
  return InternalError(message);
}

}  // namespace keyline::broker
