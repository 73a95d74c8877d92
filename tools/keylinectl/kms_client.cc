#include "kms_client.h"

#include <cstdlib>

#include <CLI/CLI.hpp>

#include "keyline/schemas/decode.h"
#include "keyline/wire/admin_generated.h"

namespace keyline::keylinectl {
namespace {

std::string FromEnv(const std::string& value, const char* variable, const std::string& fallback = "") {
  if (!value.empty()) return value;
  const char* env = std::getenv(variable);
  return env != nullptr ? std::string(env) : fallback;
}

}  // namespace

void KmsConnection::AddOptions(CLI::App& command) {
  command.add_option("--kms", endpoint, "KMS admin endpoint (env KEYLINE_KMS; default tcp://127.0.0.1:7200)");
  command.add_option("--kms-curve-key", curve_key, "the KMS's Curve public key, Z85 (env KEYLINE_KMS_CURVE_KEY)");
  command.add_option("--kms-curve-key-file", curve_key_file,
                     "or a file holding it (env KEYLINE_KMS_CURVE_KEY_FILE)");
  command.add_option("--admin-key", admin_key_file, "admin Curve key pair file (env KEYLINE_ADMIN_KEY)");
}

StatusOr<std::unique_ptr<KmsClient>> KmsClient::Connect(const KmsConnection& connection) {
  broker::RpcClient::Options options;
  options.server_endpoint = FromEnv(connection.endpoint, "KEYLINE_KMS", "tcp://127.0.0.1:7200");
  const std::string curve = FromEnv(connection.curve_key, "KEYLINE_KMS_CURVE_KEY");
  const std::string curve_file = FromEnv(connection.curve_key_file, "KEYLINE_KMS_CURVE_KEY_FILE");
  if (!curve.empty()) {
    ASSIGN_OR_RETURN(options.server_key, broker::CurvePublicKeyFromZ85(curve, "--kms-curve-key"));
  } else if (!curve_file.empty()) {
    auto key = broker::LoadCurvePublicKeyFile(curve_file);
    if (!key.ok()) return InvalidArgumentError("--kms-curve-key-file: " + key.status().message());
    options.server_key = *key;
  } else {
    return InvalidArgumentError(
        "--kms-curve-key (or KEYLINE_KMS_CURVE_KEY, or a file in --kms-curve-key-file / "
        "KEYLINE_KMS_CURVE_KEY_FILE) is needed: the KMS's Curve public key");
  }
  const std::string key_file = FromEnv(connection.admin_key_file, "KEYLINE_ADMIN_KEY");
  if (key_file.empty()) {
    return InvalidArgumentError("--admin-key (or KEYLINE_ADMIN_KEY) is needed: this admin's Curve key file");
  }
  auto keys = broker::CurveKeyPair::Load(key_file);
  if (!keys.ok()) return InvalidArgumentError("--admin-key: " + keys.status().message());
  options.keys = *keys;
  auto client = std::make_unique<KmsClient>();
  ASSIGN_OR_RETURN(client->rpc_, broker::RpcClient::Connect(options));
  return client;
}

StatusOr<AdminAnswer> KmsClient::Call(std::span<const uint8_t> request, int timeout_ms) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> reply, rpc_->Call(request, timeout_ms));
  ASSIGN_OR_RETURN(const wire::AdminReply* decoded, schemas::DecodeMessage<wire::AdminReply>(reply));
  AdminAnswer answer;
  auto parsed = nlohmann::json::parse(schemas::Text(decoded->json()), nullptr, false);
  if (parsed.is_discarded()) return InternalError("the KMS answered with malformed JSON");
  answer.json = std::move(parsed);
  auto data = schemas::Bytes(decoded->data());
  answer.data.assign(data.begin(), data.end());
  return answer;
}

}  // namespace keyline::keylinectl
