#include "admin_support.h"

#include <charconv>

#include "keyline/common/hex.h"
#include "keyline/schemas/build.h"

namespace keyline::keylinectl {

std::vector<uint8_t> Finish(flatbuffers::FlatBufferBuilder& fbb, wire::AdminCommand type,
                            flatbuffers::Offset<void> command) {
  fbb.Finish(wire::CreateAdminRequest(fbb, type, command));
  auto bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

StatusOr<uint32_t> Number(const std::string& text, std::string_view what, uint64_t max) {
  std::string_view digits = text;
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    digits.remove_prefix(2);
    base = 16;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (digits.empty() || end != digits.data() + digits.size() || ec != std::errc()) {
    return InvalidArgumentError(std::string(what) + ": '" + text + "' is not a number");
  }
  if (value > max) {
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

Status Remote(Status status) {
  if (status.ok()) return status;
  return Status(StatusCode::kFailedPrecondition, status.message());
}

StatusOr<AdminAnswer> Ask(const KmsConnection& connection, std::span<const uint8_t> request, int timeout_ms) {
  ASSIGN_OR_RETURN(auto client, KmsClient::Connect(connection));
  auto answer = client->Call(request, timeout_ms);
  if (!answer.ok()) return Remote(answer.status());
  return answer;
}

void Print(std::ostream& out, bool as_json, const nlohmann::json& j, const std::string& text) {
  if (as_json) {
    out << j.dump() << '\n';
  } else {
    out << text << '\n';
  }
}

std::string Join(const nlohmann::json& list) {
  std::string out;
  for (const auto& item : list) out += (out.empty() ? "" : ", ") + item.get<std::string>();
  return out.empty() ? "none" : out;
}

}  // namespace keyline::keylinectl
