// A SoftHSMv2 set-up owned by the test process: a temp token directory, its own SOFTHSM2_CONF,
// and initialised tokens. Nothing is set up by hand. SoftHSM reads its configuration when the
// module is first initialised, so every token the test needs is created before that.
#pragma once

#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include "keyline/hsm/pkcs11_custody.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::hsm::testing {

inline constexpr const char* kSoftHsmModule = "/usr/lib/softhsm/libsofthsm2.so";
inline constexpr const char* kPinEnv = "KEYLINE_TEST_PKCS11_PIN";
inline constexpr const char* kTokenA = "plant-a";
inline constexpr const char* kTokenB = "plant-b";

class SoftHsm {
 public:
  SoftHsm() {
    std::filesystem::create_directories(dir_.path() / "tokens");
    auto conf = dir_.path() / "softhsm2.conf";
    std::ofstream(conf) << "directories.tokendir = " << (dir_.path() / "tokens").string() << "\n"
                        << "objectstore.backend = file\nlog.level = ERROR\n";
    ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
    ::setenv(kPinEnv, "123456", 1);
    for (const char* label : {kTokenA, kTokenB}) {
      std::string command = std::string("softhsm2-util --init-token --free --label ") + label +
                            " --pin 123456 --so-pin 654321 >/dev/null";
      if (std::system(command.c_str()) != 0) {
        throw std::runtime_error("softhsm2-util --init-token failed for " + std::string(label));
      }
    }
  }
  const std::filesystem::path& dir() const { return dir_.path(); }

  static SoftHsm& Instance() {
    static SoftHsm instance;
    return instance;
  }

 private:
  keyline::testing::TempDir dir_;
};

inline Pkcs11CustodyOptions TokenOptions(const char* label) {
  SoftHsm::Instance();
  Pkcs11CustodyOptions options;
  options.module_path = kSoftHsmModule;
  options.token_label = label;
  options.pin_env_var = kPinEnv;
  return options;
}

}  // namespace keyline::hsm::testing
