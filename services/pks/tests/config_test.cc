// pks.toml: every missing or wrong setting is one line naming it, before anything starts.
#include <boost/test/unit_test.hpp>

#include "keyline/pks/pks_config.h"

namespace keyline::pks {
namespace {

const std::string kGood = R"(
data_dir = "data"
[plant]
id = "plant-a"
[hsm]
backend = "software"
master_key_file = "hsm.key"
[kms]
connect = "tcp://kms.example:7100"
curve_public_key_file = "kms.pub"
[link]
listen = "tcp://0.0.0.0:7200"
curve_key_file = "pks.curve"
)";

std::string Error(const std::string& text) {
  auto config = ParsePksConfig(text, "pks.toml", "/etc/keyline");
  return config.ok() ? std::string("(accepted)") : config.status().message();
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  text.replace(text.find(from), from.size(), to);
  return text;
}

BOOST_AUTO_TEST_CASE(GoodConfigResolvesPathsAgainstItsDirectory) {
  auto config = ParsePksConfig(kGood, "pks.toml", "/etc/keyline");
  BOOST_REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  BOOST_TEST(config->plant_id == "plant-a");
  BOOST_TEST(config->data_dir == "/etc/keyline/data");
  BOOST_TEST(config->hsm.master_key_file == "/etc/keyline/hsm.key");
  BOOST_TEST(config->sync_continuous);
  BOOST_TEST(config->deadline_sweep_ms == 500);
}

BOOST_AUTO_TEST_CASE(EachProblemIsOneLineNamingTheSetting) {
  BOOST_TEST(Error(Replace(kGood, "id = \"plant-a\"", "")) == "pks.toml: [plant] id is missing");
  BOOST_TEST(Error(Replace(kGood, "tcp://kms.example:7100", "kms.example")).find("[kms] connect") !=
             std::string::npos);
  BOOST_TEST(Error(Replace(kGood, "backend = \"software\"", "backend = \"tpm\"")).find("[hsm] backend") !=
             std::string::npos);
  BOOST_TEST(Error(kGood + "[sync]\nmode = \"sometimes\"\n").find("[sync] mode") != std::string::npos);
  BOOST_TEST(Error(kGood + "[sync]\ninterval_s = 0\n").find("[sync] interval_s") != std::string::npos);
  BOOST_TEST(Error(kGood + "[stock]\nrequest_retry = 5\n").find("unknown setting [stock] request_retry") !=
             std::string::npos);
  for (const std::string& bad : {Error(Replace(kGood, "id = \"plant-a\"", ""))}) {
    BOOST_TEST(bad.find('\n') == std::string::npos);
  }
}

}  // namespace
}  // namespace keyline::pks
