// What every KMS module shares: the database, the message store, the custody and the KMS's own
// keys. Internal to services/kms.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <flatbuffers/flatbuffers.h>

#include "keyline/broker/database.h"
#include "keyline/broker/message_store.h"
#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"

namespace rocksdb {
class ColumnFamilyHandle;
}

namespace keyline::kms {

struct KmsContext {
  broker::Database* database = nullptr;
  broker::MessageStore* store = nullptr;
  hsm::KeyCustody* custody = nullptr;
  hsm::KeyHandle import_key;   // X25519 "kms-import": OEM batch files are sealed to it
  hsm::KeyHandle signing_key;  // Ed25519 "kms-signing": signs verification files
  hsm::PublicKey import_public;
  hsm::PublicKey signing_public;

  rocksdb::ColumnFamilyHandle* Family(std::string_view name) const {
    return database->Family(name);
  }
  // The committed value of `key`, or nullopt. Errors are I/O failures.
  StatusOr<std::optional<std::string>> Get(std::string_view family, std::string_view key) const;
};

// For a module that mirrors part of the database in memory: whether a group write failed since
// it last looked. A failed write takes back what the module's memory already holds, so the
// module reloads from the database then.
class FailedWriteWatch {
 public:
  // In step with the store now (call after loading).
  void Arm(const KmsContext& context) { seen_ = context.store->counters().failed_writes; }
  // True once per failed group write since the last Arm or call.
  bool FailedSinceLastLook(const KmsContext& context) {
    const uint64_t failed = context.store->counters().failed_writes;
    if (failed == seen_) return false;
    seen_ = failed;
    return true;
  }

 private:
  uint64_t seen_ = 0;
};

int64_t NowUs();
// "2026-12-02T03:26:45.123456Z".
std::string Rfc3339(int64_t us);

inline std::span<const uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}
inline std::string_view AsText(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}
inline std::string_view FinishedText(const flatbuffers::FlatBufferBuilder& fbb) {
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

}  // namespace keyline::kms
