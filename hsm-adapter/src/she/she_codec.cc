#include "she/she_codec.h"

#include <sodium.h>

#include <algorithm>
#include <string>

namespace keyline::hsm::internal {

Block EncodeM1(const SheProofFields& fields) {
  Block m1{};
  std::copy(fields.uid.begin(), fields.uid.end(), m1.begin());
  m1[15] = static_cast<uint8_t>(((fields.slot & 0x0F) << 4) | (fields.auth_slot & 0x0F));
  return m1;
}

Block EncodeM2FirstBlock(uint32_t counter, uint8_t flags) {
  // Counter in bits 127..100, flags in bits 99..95 (most significant bit first).
  Block b{};
  uint64_t top = (static_cast<uint64_t>(counter & kSheMaxCounter) << 36) |
                 (static_cast<uint64_t>(flags & kSheMaxFlags) << 31);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(top >> (56 - 8 * i));
  return b;
}

Block EncodeM4Plain(uint32_t counter) {
  Block b{};
  uint32_t top = ((counter & kSheMaxCounter) << 4) | 0x8;
  for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(top >> (24 - 8 * i));
  return b;
}

void DecodeM4Header(std::span<const uint8_t, 16> header, SheProofCheck& out) {
  std::copy(header.begin(), header.begin() + 15, out.uid.begin());
  out.slot = static_cast<uint8_t>(header[15] >> 4);
  out.auth_slot = static_cast<uint8_t>(header[15] & 0x0F);
}

bool DecodeM4Plain(std::span<const uint8_t, 16> plain, uint32_t& counter) {
  uint32_t top = (static_cast<uint32_t>(plain[0]) << 24) | (static_cast<uint32_t>(plain[1]) << 16) |
                 (static_cast<uint32_t>(plain[2]) << 8) | plain[3];
  counter = top >> 4;
  uint8_t padding_error = static_cast<uint8_t>((top & 0xF) ^ 0x8);
  for (size_t i = 4; i < 16; ++i) padding_error |= plain[i];
  return padding_error == 0;
}

void MpStep(const Block& aes_result, const Block& x, const Block& h, uint8_t* out) {
  for (size_t i = 0; i < 16; ++i) out[i] = static_cast<uint8_t>(aes_result[i] ^ x[i] ^ h[i]);
}

}  // namespace keyline::hsm::internal

namespace keyline::hsm {

bool IsWildcardUid(const SheUid& uid) {
  return std::all_of(uid.begin(), uid.end(), [](uint8_t b) { return b == 0; });
}

bool SheProofCheck::Proves(const SheUid& expected_uid, uint8_t expected_slot,
                           uint32_t expected_counter) const {
  return valid && uid == expected_uid && slot == expected_slot && counter == expected_counter;
}

Status ValidateSheFlags(uint32_t flags) {
  if (flags > kSheMaxFlags) {
    return OutOfRangeError("SHE flags " + std::to_string(flags) +
                           " do not fit in 5 bits (0..31)");
  }
  return Status::Ok();
}

Status ValidateSheFields(const SheProofFields& fields) {
  if (fields.slot > kSheMaxSlot) {
    return OutOfRangeError("SHE slot ID " + std::to_string(fields.slot) +
                           " does not fit in 4 bits (0..15)");
  }
  if (fields.auth_slot > kSheMaxSlot) {
    return OutOfRangeError("SHE auth slot ID " + std::to_string(fields.auth_slot) +
                           " does not fit in 4 bits (0..15)");
  }
  if (fields.counter > kSheMaxCounter) {
    return OutOfRangeError("SHE counter " + std::to_string(fields.counter) +
                           " does not fit in 28 bits (0..268435455)");
  }
  if (IsWildcardUid(fields.uid) && !fields.allow_wildcard_uid) {
    return InvalidArgumentError(
        "SHE UID is the all-zero wildcard; it loads every ECU whose slot has the WILDCARD flag, "
        "so it must be allowed explicitly");
  }
  return Status::Ok();
}

std::string_view SheSlotName(uint8_t slot) {
  static constexpr std::string_view kNames[16] = {
      "SECRET_KEY", "MASTER_ECU_KEY", "BOOT_MAC_KEY", "BOOT_MAC", "KEY_1",   "KEY_2",
      "KEY_3",      "KEY_4",          "KEY_5",        "KEY_6",    "KEY_7",   "KEY_8",
      "KEY_9",      "KEY_10",         "RAM_KEY",      "RESERVED"};
  return slot < 16 ? kNames[slot] : "INVALID";
}

}  // namespace keyline::hsm

namespace keyline::hsm {

SheProofDigest DigestSheProof(const SheProof& proof) {
  // The personalisation string separates this use of BLAKE2b from any other.
  static constexpr unsigned char kPersonal[crypto_generichash_blake2b_PERSONALBYTES] =
      {'k', 'l', '-', 's', 'h', 'e', '-', 'p', 'r', 'o', 'o', 'f', '-', 'v', '1', 0};
  std::array<uint8_t, sizeof(proof.m4) + sizeof(proof.m5)> input{};
  std::copy(proof.m4.begin(), proof.m4.end(), input.begin());
  std::copy(proof.m5.begin(), proof.m5.end(), input.begin() + proof.m4.size());
  SheProofDigest digest{};
  crypto_generichash_blake2b_salt_personal(digest.data(), digest.size(), input.data(),
                                           input.size(), nullptr, 0, nullptr, kPersonal);
  return digest;
}

}  // namespace keyline::hsm
