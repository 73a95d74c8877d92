#include "cli_values.h"

#include <algorithm>
#include <charconv>
#include <vector>

#include "keyline/common/hex.h"

namespace keyline::keylinectl {

StatusOr<uint32_t> ParseNumber(const std::string& text, std::string_view what, uint64_t max) {
  std::string_view digits = text;
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    digits.remove_prefix(2);
    base = 16;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (digits.empty() || end != digits.data() + digits.size() ||
      (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    return InvalidArgumentError(std::string(what) + ": '" + text + "' is not a number");
  }
  if (ec == std::errc::result_out_of_range || value > max) {
    return OutOfRangeError(std::string(what) + ": " + text + " is out of range (0.." + std::to_string(max) + ")");
  }
  return static_cast<uint32_t>(value);
}

StatusOr<std::array<uint8_t, 32>> Key32(const std::string& hex, std::string_view what) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ParseHex(hex, what, 32));
  std::array<uint8_t, 32> out{};
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

}  // namespace keyline::keylinectl
