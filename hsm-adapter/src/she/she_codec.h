// The byte layouts of the SHE memory update protocol, shared by every backend. No key bytes
// pass through here except in the XOR steps of the Miyaguchi-Preneel compression, which the
// backends call with their own AES results.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "keyline/hsm/she.h"

namespace keyline::hsm::internal {

using Block = std::array<uint8_t, 16>;

// KEY_UPDATE_ENC_C and KEY_UPDATE_MAC_C (SHE.md).
inline constexpr Block kKeyUpdateEncC = {0x01, 0x01, 0x53, 0x48, 0x45, 0x00, 0x80, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xB0};
inline constexpr Block kKeyUpdateMacC = {0x01, 0x02, 0x53, 0x48, 0x45, 0x00, 0x80, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xB0};

// UID(120) | ID(4) | AuthID(4): M1, and the first half of M4.
Block EncodeM1(const SheProofFields& fields);

// Counter(28) | Flags(5) | 0(95): the first plaintext block of M2.
Block EncodeM2FirstBlock(uint32_t counter, uint8_t flags);

// Counter(28) | 1 | 0(99): the plaintext of M4's second half.
Block EncodeM4Plain(uint32_t counter);

// Reads UID, ID and AuthID from M4's clear half.
void DecodeM4Header(std::span<const uint8_t, 16> header, SheProofCheck& out);

// Reads the counter from M4's decrypted half; false when the padding (1 then zeros) is wrong.
bool DecodeM4Plain(std::span<const uint8_t, 16> plain, uint32_t& counter);

// One Miyaguchi-Preneel step: out = aes_result XOR x XOR h, where aes_result = AES(h, x).
void MpStep(const Block& aes_result, const Block& x, const Block& h, uint8_t* out);

}  // namespace keyline::hsm::internal
