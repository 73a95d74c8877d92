// Values typed on keylinectl's command line: numbers and fixed-length hex keys. Errors name the
// option and never echo a key's digits.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "keyline/common/status.h"

namespace keyline::keylinectl {

// Decimal or 0x-prefixed hex, within [0, max]. kInvalidArgument: not a number;
// kOutOfRange: above max (also a number too long for 64 bits).
StatusOr<uint32_t> ParseNumber(const std::string& text, std::string_view what, uint64_t max);

// 64 hex digits as 32 bytes.
StatusOr<std::array<uint8_t, 32>> Key32(const std::string& hex, std::string_view what);

}  // namespace keyline::keylinectl
