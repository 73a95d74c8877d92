// The hash-chained audit log: every admin action and every key set transition.
//
// Entry n stores prev_hash = hash of entry n-1 and hash = BLAKE2b-256(prev_hash, sequence,
// at_us, actor, action, subject, detail), each text length-prefixed. The head (last sequence and
// hash) is kept under meta "audit_head" in the same write, so that removing the newest entries
// is detected too. Verify() recomputes the chain and names the first entry that breaks it.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "keyline/kms/kms.h"
#include "kms_context.h"

namespace keyline::kms {

class AuditLog {
 public:
  explicit AuditLog(KmsContext* context) : context_(context) {}

  // Reads the head. Call once at start.
  [[nodiscard]] Status Load();

  // Appends an entry to `write` (call last in a Work that will succeed: a Work that fails
  // after appending would leave a gap, which the next write failure check repairs).
  // Runs on the commit thread only.
  void Append(broker::WriteContext& write, std::string_view actor, std::string_view action,
              std::string_view subject, std::string_view detail_json);

  [[nodiscard]] StatusOr<AuditReport> Verify() const;

 private:
  void ReloadAfterFailedWrite();

  KmsContext* context_;
  uint64_t head_sequence_ = 0;
  std::array<uint8_t, 32> head_hash_{};
  FailedWriteWatch failed_writes_;
};

}  // namespace keyline::kms
