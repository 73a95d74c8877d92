#include "keyline/common/hex.h"

namespace keyline {
int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string ToHex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0f]);
  }
  return out;
}

StatusOr<std::vector<uint8_t>> ParseHex(std::string_view hex, std::string_view what,
                                        std::optional<size_t> expected_bytes) {
  if (hex.size() % 2 != 0) {
    return InvalidArgumentError(std::string(what) + ": odd number of hex digits (" +
                                std::to_string(hex.size()) + ")");
  }
  std::vector<uint8_t> out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexDigitValue(hex[i]);
    int lo = HexDigitValue(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      size_t bad = hi < 0 ? i : i + 1;
      return InvalidArgumentError(std::string(what) + ": '" + std::string(1, hex[bad]) +
                                  "' at position " + std::to_string(bad + 1) +
                                  " is not a hex digit");
    }
    out.push_back(static_cast<uint8_t>((hi << 4) | lo));
  }
  if (expected_bytes && out.size() != *expected_bytes) {
    return InvalidArgumentError(std::string(what) + ": expected " +
                                std::to_string(*expected_bytes) + " bytes (" +
                                std::to_string(*expected_bytes * 2) + " hex digits), got " +
                                std::to_string(out.size()) + " bytes");
  }
  return out;
}

}  // namespace keyline
