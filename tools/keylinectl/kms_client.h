// keylinectl's connection to a running KMS: CurveZMQ request/response with a registered admin
// key (broker/include/keyline/broker/rpc.h, schemas/admin.fbs).
//
// Where to connect comes from options or the environment:
//   --kms ENDPOINT        KEYLINE_KMS            default tcp://127.0.0.1:7200
//   --kms-curve-key Z85   KEYLINE_KMS_CURVE_KEY  the KMS's Curve public key (keyline-kms keys)
//   --kms-curve-key-file F  KEYLINE_KMS_CURVE_KEY_FILE  or a file holding it ("public = <z85>"
//                         or one line of Z85), used when no Z85 is given
//   --admin-key FILE      KEYLINE_ADMIN_KEY      this admin's key pair file (keyline-kms admin-key)
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "keyline/broker/rpc.h"
#include "keyline/common/status.h"

namespace CLI {
class App;
}

namespace keyline::keylinectl {

struct KmsConnection {
  std::string endpoint;
  std::string curve_key;
  std::string curve_key_file;
  std::string admin_key_file;

  // Adds --kms, --kms-curve-key, --kms-curve-key-file, --admin-key to a subcommand.
  void AddOptions(CLI::App& command);
};

struct AdminAnswer {
  nlohmann::json json;
  std::vector<uint8_t> data;
};

class KmsClient {
 public:
  // Resolves options and environment; a missing or malformed setting is INVALID_ARGUMENT naming it.
  static StatusOr<std::unique_ptr<KmsClient>> Connect(const KmsConnection& connection);
  // Sends one AdminRequest FlatBuffer; the KMS's refusal comes back as its Status.
  StatusOr<AdminAnswer> Call(std::span<const uint8_t> request, int timeout_ms = 30000);

 private:
  std::unique_ptr<broker::RpcClient> rpc_;
};

}  // namespace keyline::keylinectl
