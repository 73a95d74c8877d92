#include "keyline/kms/config.h"

#include <spdlog/spdlog.h>

#include "keyline/common/config.h"
#include "keyline/hsm/software_custody.h"

namespace keyline::kms {

StatusOr<KmsConfig> LoadKmsConfig(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(ConfigReader reader, ConfigReader::Load(path));
  const std::filesystem::path base = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  KmsConfig config;
  ConfigReader kms = reader.Section("kms");
  std::string data_dir = kms.RequireString("data_dir");
  if (!data_dir.empty()) config.kms.data_dir = ResolveConfigPath(base, data_dir);
  config.kms.link_bind = kms.OptionalString("link_bind", config.kms.link_bind);
  config.kms.admin_bind = kms.OptionalString("admin_bind", config.kms.admin_bind);
  std::string curve = kms.OptionalString("curve_key_file", "");
  if (!curve.empty()) config.kms.curve_key_file = ResolveConfigPath(base, curve);
  for (const std::string& text : kms.OptionalStringList("admin_keys")) {
    auto key = broker::CurvePublicKeyFromZ85(text, "admin key");
    if (!key.ok()) {
      kms.Fail("admin_keys", key.status().message());
      continue;
    }
    config.kms.admin_keys.push_back(*key);
  }
  // The same keys as files, read when the KMS starts: an installation that makes its admin key
  // at set-up names the file and never edits this one.
  for (const std::string& file : kms.OptionalStringList("admin_key_files")) {
    config.kms.admin_key_files.push_back(ResolveConfigPath(base, file));
  }
  config.kms.heartbeat_interval_ms =
      static_cast<int>(kms.OptionalInt("heartbeat_interval_ms", 1000, 10, 60000));
  config.kms.heartbeat_timeout_ms =
      static_cast<int>(kms.OptionalInt("heartbeat_timeout_ms", 5000, 50, 600000));
  ConfigReader hsm = reader.Section("hsm");
  config.hsm_backend = hsm.RequireChoice("backend", {"software"});
  std::string master = hsm.RequireString("master_key_file");
  if (!master.empty()) config.master_key_file = ResolveConfigPath(base, master);
  ConfigReader log = reader.Section("log");
  config.log_level = log.OptionalString("level", "info");
  std::string file = log.OptionalString("file", "");
  if (!file.empty()) config.log_file = ResolveConfigPath(base, file);
  RETURN_IF_ERROR(reader.Finish());
  return config;
}

StatusOr<std::unique_ptr<hsm::KeyCustody>> OpenKmsCustody(const KmsConfig& config) {
  if (!std::filesystem::exists(config.master_key_file)) {
    std::error_code ec;
    if (config.master_key_file.has_parent_path()) {
      std::filesystem::create_directories(config.master_key_file.parent_path(), ec);
    }
    RETURN_IF_ERROR(hsm::CreateMasterKeyFile(config.master_key_file, {}));
    spdlog::info("kms: created master key file {}", config.master_key_file.string());
  }
  hsm::SoftwareCustodyOptions options;
  options.master_key_file = config.master_key_file;
  return hsm::CreateSoftwareCustody(options);
}

}  // namespace keyline::kms
