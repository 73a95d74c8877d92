#include <fstream>

#include <boost/test/unit_test.hpp>

#include "keyline/common/config.h"

namespace keyline {
namespace {

constexpr const char* kGood = R"(
data_dir = "/var/lib/keyline"

[plant]
id = "plant-a"

[sync]
mode = "interval"
interval_s = 30

[[product]]
name = "ecu-a"
min_stock = 10

[[product]]
name = "ecu-b"
min_stock = 5
)";

BOOST_AUTO_TEST_SUITE(ConfigTests)

BOOST_AUTO_TEST_CASE(ReadsEverySettingKind) {
  auto config = ConfigReader::Parse(kGood, "pks.toml");
  BOOST_REQUIRE(config.ok());
  BOOST_TEST(config->RequireString("data_dir") == "/var/lib/keyline");
  BOOST_TEST(config->Section("plant").RequireString("id") == "plant-a");
  ConfigReader sync = config->Section("sync");
  BOOST_TEST(sync.RequireChoice("mode", {"continuous", "interval"}) == "interval");
  BOOST_TEST(sync.OptionalInt("interval_s", 60, 1, 3600) == 30);
  auto products = config->TableArray("product");
  BOOST_REQUIRE(products.size() == 2u);
  BOOST_TEST(products[0].RequireString("name") == "ecu-a");
  BOOST_TEST(products[1].RequireString("name") == "ecu-b");
  BOOST_TEST(products[0].RequireInt("min_stock", 0, 1000) == 10);
  BOOST_TEST(products[1].RequireInt("min_stock", 0, 1000) == 5);
  BOOST_TEST(products[0].OptionalString("oem", "none") == "none");
  BOOST_TEST(config->Finish().ToString() == "OK");
}

BOOST_AUTO_TEST_CASE(MissingKeyIsNamedWithItsSection) {
  auto config = ConfigReader::Parse("[plant]\nname = \"x\"\n", "pks.toml");
  BOOST_REQUIRE(config.ok());
  config->Section("plant").RequireString("id");
  config->Section("plant").RequireString("name");
  BOOST_TEST(config->Finish().message() == "pks.toml: [plant] id is missing");
}

BOOST_AUTO_TEST_CASE(UnknownKeyIsNamed) {
  auto config = ConfigReader::Parse("[sync]\nintervall_s = 5\n", "pks.toml");
  BOOST_REQUIRE(config.ok());
  config->Section("sync").OptionalInt("interval_s", 60, 1, 3600);
  BOOST_TEST(config->Finish().message() ==
             "pks.toml: unknown setting [sync] intervall_s (misspelt, or not a setting of this "
             "program)");
}

BOOST_AUTO_TEST_CASE(UnknownSectionIsNamed) {
  auto config = ConfigReader::Parse("[sycn]\nmode = \"x\"\n", "pks.toml");
  BOOST_REQUIRE(config.ok());
  config->Section("sync").OptionalString("mode", "continuous");
  BOOST_TEST(config->Finish().message() ==
             "pks.toml: unknown section [sycn] (misspelt, or not a setting of this program)");
}

BOOST_AUTO_TEST_CASE(UnknownKeyInsideTableArrayIsNamedByNumber) {
  auto config = ConfigReader::Parse(kGood + std::string("\n[[product]]\nname = \"c\"\nmin_stok = 1\n"),
                                    "pks.toml");
  BOOST_REQUIRE(config.ok());
  config->RequireString("data_dir");
  config->Section("plant").RequireString("id");
  config->Section("sync").RequireString("mode");
  config->Section("sync").RequireInt("interval_s", 1, 100);
  for (auto& product : config->TableArray("product")) {
    product.RequireString("name");
    product.OptionalInt("min_stock", 0, 0, 100);
  }
  BOOST_TEST(config->Finish().message() ==
             "pks.toml: unknown setting [product.3] min_stok (misspelt, or not a setting of this "
             "program)");
}

BOOST_AUTO_TEST_CASE(WrongTypeAndRangeAreSpecific) {
  auto config = ConfigReader::Parse("a = \"five\"\nb = 0\nc = \"weekly\"\n", "kms.toml");
  BOOST_REQUIRE(config.ok());
  config->RequireInt("a", 1, 10);
  BOOST_TEST(config->Finish().message() == "kms.toml: a must be an integer, not a string");

  auto second = ConfigReader::Parse("b = 0\n", "kms.toml");
  second->RequireInt("b", 1, 10);
  BOOST_TEST(second->Finish().message() == "kms.toml: b = 0 is out of range 1..10");

  auto third = ConfigReader::Parse("c = \"weekly\"\n", "kms.toml");
  third->RequireChoice("c", {"continuous", "interval"});
  BOOST_TEST(third->Finish().message() ==
             "kms.toml: c = \"weekly\" is not one of continuous|interval");
}

BOOST_AUTO_TEST_CASE(SyntaxErrorNamesLineAndColumn) {
  auto config = ConfigReader::Parse("[plant]\nid = \n", "pks.toml");
  BOOST_REQUIRE(!config.ok());
  BOOST_TEST(config.status().message().rfind("pks.toml:2:", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(MissingFileIsNotFound) {
  auto config = ConfigReader::Load("/nonexistent/keyline/pks.toml");
  BOOST_TEST(config.status().code() == StatusCode::kNotFound);
  BOOST_TEST(config.status().message() ==
             "/nonexistent/keyline/pks.toml: configuration file not found");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline
