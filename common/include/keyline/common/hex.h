// Hex encoding of public bytes (ids, UIDs, proofs, public keys, signatures).
// Key material never passes through here: hsm-adapter parses secret hex into guarded memory.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keyline/common/status.h"

namespace keyline {

// 0..15 for a hex digit (either case), -1 for anything else.
int HexDigitValue(char c);

// Lower-case hex.
std::string ToHex(std::span<const uint8_t> bytes);

// Parses hex (either case). `what` names the value in errors ("--uid"); when `expected_bytes`
// is set, a different length is an error that says both lengths.
StatusOr<std::vector<uint8_t>> ParseHex(std::string_view hex, std::string_view what,
                                        std::optional<size_t> expected_bytes = std::nullopt);

}  // namespace keyline
