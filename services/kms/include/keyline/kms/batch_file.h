// OEM key batch files (.klb): how an OEM hands key sets to the KMS. Format: docs/kms.md and
// schemas/oem_batch.fbs. A file is signed by the OEM's registered Ed25519 key and its keys are
// sealed (KeyCustody::WrapForPeer) to the KMS import key, in chunks of up to 4096 keys.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"

namespace keyline::wire {
struct OemBatchFile;
struct OemBatchBody;
}  // namespace keyline::wire

namespace keyline::kms {

inline constexpr uint32_t kBatchFormatVersion = 1;
// Largest batch file accepted (FlatBuffers address 2 GiB at most). 1 GiB holds ~10 million
// three-slot key sets.
inline constexpr size_t kMaxBatchFileBytes = size_t{1} << 30;

// What the OEM's tooling puts in a batch.
struct OemBatchSpec {
  std::string oem;
  std::string product;
  // Empty: "<oem>-<16 random hex digits>".
  std::string batch_id;
  // SHE slot numbers, one key each per key set, in the product's load order.
  std::vector<uint8_t> slots;
  uint64_t count = 0;
  // The KMS import key (X25519) the keys are sealed to (`keyline-kms keys`).
  hsm::PublicKey kms_import_key{hsm::KeyKind::kX25519, {}};
};

// Stands in for an OEM's tooling (lab and tests): draws `count` key sets of random AES-128 keys
// in `custody`, seals them to the KMS import key, signs the body with `oem_signing_key`
// (Ed25519) and writes `out`. When `secrets` is set, also writes the OEM's own record of the
// keys, one JSON line per key set:
//   {"key_set_id": "...", "product": "...", "slots": [{"slot": 1, "key": "<32 hex>"}, ...]}
// That file holds keys in clear by design (it is the OEM's copy); it is written with mode 0600.
// Returns the batch id.
[[nodiscard]] StatusOr<std::string> WriteOemBatch(
    hsm::KeyCustody& custody, hsm::KeyHandle oem_signing_key, const OemBatchSpec& spec,
    const std::filesystem::path& out, const std::optional<std::filesystem::path>& secrets);

// A batch file that passed the FlatBuffers Verifier and the format checks (not yet the
// signature: that needs the OEM's registered key). Points into the caller's bytes.
struct BatchFileView {
  const wire::OemBatchBody* body = nullptr;
  std::span<const uint8_t> signed_bytes;  // the body bytes the signature covers
  hsm::Signature signature{};
  std::string batch_id;
  std::string oem;
  std::string product;
  std::vector<uint8_t> slots;
  uint64_t key_set_count = 0;
  // Key sets per chunk, in file order.
  std::vector<uint64_t> chunk_sizes;
};

// Checks structure: identifier, Verifier, format version, ids "<batch_id>.<index>" in order,
// key set count, slot list, chunk sizes. Errors say what is wrong ("batch file: key set 17
// is 'x', expected 'acme-1.17'").
[[nodiscard]] StatusOr<BatchFileView> ParseBatchFile(std::span<const uint8_t> bytes);

// The context a chunk is sealed with.
std::string ChunkContext(const std::string& batch_id, size_t chunk_index);

// Reads a whole file (up to kMaxBatchFileBytes).
[[nodiscard]] StatusOr<std::vector<uint8_t>> ReadFileBytes(const std::filesystem::path& path,
                                                           size_t max_bytes);

}  // namespace keyline::kms
