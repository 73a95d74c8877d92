#include "keys.h"

namespace keyline::broker::keys {

std::optional<ParsedKey> Parse(std::string_view key) {
  if (key.size() < 3) return std::nullopt;
  ParsedKey parsed{key[0], {}, 0};
  std::string_view rest = key.substr(1);
  size_t zero = rest.find('\0');
  if (zero == std::string_view::npos) return std::nullopt;
  parsed.queue.peer = std::string(rest.substr(0, zero));
  rest = rest.substr(zero + 1);
  if (parsed.kind == kMessage || parsed.kind == kDeadLetter) {
    if (rest.size() < 9 || rest[rest.size() - 9] != '\0') return std::nullopt;
    parsed.queue.stream = std::string(rest.substr(0, rest.size() - 9));
    parsed.sequence = ReadBigEndian(rest.substr(rest.size() - 8));
  } else {
    parsed.queue.stream = std::string(rest);
  }
  return parsed;
}

}  // namespace keyline::broker::keys
