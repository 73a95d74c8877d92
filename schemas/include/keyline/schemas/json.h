// Messages as readable JSON, for inspection tools (keyline-queue peek). Call only on a payload
// that passed VerifyPayload for `type`.
//
// Byte fields print as lower-case hex (UIDs, M1..M5, signatures, public keys); sealed key
// material (a StockBatch key set's `wrapped` blob) prints only its size. No Keyline message
// carries a key in clear, and this keeps even wrapped key material off people's screens.
//
// A field that holds a FlatBuffer of its own (an InjectionRecord's signed `body`) prints as a
// nested object, after it passes the Verifier here, on its own: the outer payload may have
// been verified without looking inside nested buffers. Bytes that do not verify print as
// {"error": "body does not verify", "hex": "..."} and are never read as a table.
#pragma once

#include <span>
#include <string>

#include "keyline/wire/envelope_generated.h"

namespace keyline::schemas {

// One JSON object (a single line). Precondition: `payload` verifies as the table `type` names
// (VerifyPayload is OK, or the same with the Verifier's nested-buffer check turned off).
std::string PayloadToJson(wire::MessageType type, std::span<const uint8_t> payload);

}  // namespace keyline::schemas
