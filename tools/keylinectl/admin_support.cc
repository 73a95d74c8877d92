#include "admin_support.h"

#include "keyline/schemas/build.h"

namespace keyline::keylinectl {

std::vector<uint8_t> Finish(flatbuffers::FlatBufferBuilder& fbb, wire::AdminCommand type,
                            flatbuffers::Offset<void> command) {
  fbb.Finish(wire::CreateAdminRequest(fbb, type, command));
  auto bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
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
