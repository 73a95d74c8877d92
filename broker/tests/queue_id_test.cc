#include <boost/test/unit_test.hpp>

#include "keyline/broker/queue_id.h"

namespace keyline::broker {
namespace {

BOOST_AUTO_TEST_SUITE(QueueIdTests)

BOOST_AUTO_TEST_CASE(ParsesPeerSlashStream) {
  auto id = QueueId::Parse("plant-a/records");
  BOOST_REQUIRE(id.ok());
  BOOST_TEST(id->peer == "plant-a");
  BOOST_TEST(id->stream == "records");
  BOOST_TEST(id->ToString() == "plant-a/records");
}

BOOST_AUTO_TEST_CASE(RefusesNamesThatCouldBreakStorageKeys) {
  BOOST_TEST(QueueId::Parse("records").status().message() ==
             "queue 'records' must be written peer/stream");
  BOOST_TEST(!QueueId::Parse("plant/a/records").ok());
  BOOST_TEST(!QueueId::Parse("/records").ok());
  BOOST_TEST(!ValidateName("peer", std::string("a\0b", 3)).ok());
  BOOST_TEST(ValidateName("peer", "a b").message() ==
             "peer 'a b' may contain only letters, digits, '.', '_' and '-'");
  BOOST_TEST(!ValidateName("stream", std::string(65, 'x')).ok());
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::broker
