// Messages as readable JSON, for inspection tools (keyline-queue peek). Call only on a payload
// that passed VerifyPayload for `type`.
//
// Byte fields print as lower-case hex (UIDs, M1..M5, signatures, public keys); sealed key
// material (a StockBatch key set's `wrapped` blob) prints only its size. No Keyline message
// carries a key in clear, and this keeps even wrapped key material off people's screens.
#pragma once

#include <span>
#include <string>

#include "keyline/wire/envelope_generated.h"

namespace keyline::schemas {

// One JSON object (a single line). Precondition: VerifyPayload(type, payload) is OK.
std::string PayloadToJson(wire::MessageType type, std::span<const uint8_t> payload);

}  // namespace keyline::schemas
