#include "keyline/hsm/custody_config.h"

#include "keyline/hsm/pkcs11_custody.h"
#include "keyline/hsm/software_custody.h"

namespace keyline::hsm {

CustodyConfig ReadCustodyConfig(const ConfigReader& section,
                                const std::filesystem::path& base_dir) {
  CustodyConfig config;
  config.backend = section.RequireChoice("backend", {"software", "pkcs11"});
  if (config.backend == "software") {
    config.master_key_file = ResolveConfigPath(base_dir, section.RequireString("master_key_file"));
  } else if (config.backend == "pkcs11") {
    config.module = ResolveConfigPath(base_dir, section.RequireString("module"));
    config.token_label = section.RequireString("token_label");
    if (section.Has("pin_file")) {
      config.pin_file = ResolveConfigPath(base_dir, section.RequireString("pin_file"));
    }
    if (section.Has("pin_env")) config.pin_env = section.RequireString("pin_env");
    if (config.pin_file.has_value() == config.pin_env.has_value()) {
      section.Fail("pin_file", "set exactly one of pin_file and pin_env");
    }
  }
  return config;
}

StatusOr<std::unique_ptr<KeyCustody>> OpenCustody(const CustodyConfig& config) {
  if (config.backend == "software") {
    SoftwareCustodyOptions options;
    options.master_key_file = config.master_key_file;
    return CreateSoftwareCustody(options);
  }
  if (config.backend == "pkcs11") {
    Pkcs11CustodyOptions options;
    options.module_path = config.module;
    options.token_label = config.token_label;
    options.pin_file = config.pin_file;
    options.pin_env_var = config.pin_env;
    options.create_missing_kek = true;
    return CreatePkcs11Custody(options);
  }
  return InvalidArgumentError("[hsm] backend \"" + config.backend +
                              "\" is not one of software, pkcs11");
}

}  // namespace keyline::hsm
