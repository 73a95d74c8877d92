#include <boost/test/unit_test.hpp>
#include <flatbuffers/flatbuffers.h>

#include "keyline/broker/database.h"
#include "keyline/broker/message_store.h"
#include "keyline/broker/queue_inspector.h"
#include "keyline/schemas/build.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/records_generated.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::broker {
namespace {

using TestDir = keyline::testing::TempDir;

std::vector<uint8_t> StockRequestBytes(uint32_t count) {
  flatbuffers::FlatBufferBuilder builder;
  builder.Finish(wire::CreateStockRequest(builder, builder.CreateString("req-1"),
                                          builder.CreateString("ecu-a"), count));
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

BOOST_AUTO_TEST_SUITE(QueueInspectorTests)

BOOST_AUTO_TEST_CASE(ShowsQueuesOfARunningServiceWithoutStoppingIt) {
  TestDir dir;
  auto database = Database::Open({.path = dir.path() / "db"});
  BOOST_REQUIRE(database.ok());
  auto store = MessageStore::Open(database->get(), {.self = "plant-a"});
  BOOST_REQUIRE(store.ok());
  const QueueId stock{"kms", "stock"};
  for (uint32_t i = 1; i <= 3; ++i) {
    BOOST_REQUIRE((*store)->Commit([&](WriteContext& write) -> Status {
      return write.Send(stock, wire::MessageType::StockRequest, StockRequestBytes(i)).status();
    }).ok());
  }
  BOOST_REQUIRE((*store)->Commit([](WriteContext& write) -> Status {
    write.MarkApplied({"kms", "config"}, 4);
    return Status::Ok();
  }).ok());
  (*store)->Acknowledge(stock, 1);
  BOOST_REQUIRE((*store)->Commit([](WriteContext&) { return Status::Ok(); }).ok());

  // The primary stays open: the inspector reads it as a secondary instance.
  auto inspector = QueueInspector::Open(dir.path());
  BOOST_REQUIRE_MESSAGE(inspector.ok(), inspector.status().ToString());
  auto outbound = (*inspector)->Outbound();
  BOOST_REQUIRE(outbound.ok());
  BOOST_REQUIRE(outbound->size() == 1u);
  BOOST_TEST((*outbound)[0].queue.ToString() == "kms/stock");
  BOOST_TEST((*outbound)[0].depth == 2u);
  BOOST_TEST((*outbound)[0].acked_through == 1u);
  BOOST_TEST((*outbound)[0].last_sequence == 3u);
  BOOST_TEST((*outbound)[0].bytes > 0u);
  BOOST_TEST((*outbound)[0].oldest_created_us > 0);

  auto inbound = (*inspector)->Inbound();
  BOOST_REQUIRE(inbound.ok());
  BOOST_REQUIRE(inbound->size() == 1u);
  BOOST_TEST((*inbound)[0].from.ToString() == "kms/config");
  BOOST_TEST((*inbound)[0].applied_through == 4u);

  auto messages = (*inspector)->Peek(stock, 10);
  BOOST_REQUIRE(messages.ok());
  BOOST_REQUIRE(messages->size() == 2u);
  BOOST_TEST((*messages)[0].sequence == 2u);
  BOOST_TEST((*messages)[0].verified);
  BOOST_TEST((*messages)[0].type == "StockRequest");
  BOOST_TEST((*messages)[0].sender == "plant-a");
  BOOST_TEST((*messages)[0].message_id.size() == 32u);
  BOOST_TEST((*messages)[0].payload_json ==
             R"({"request_id": "req-1","product": "ecu-a","count": 2})");
}

// What keyline-queue peek prints for a record: the signed body decoded, not a hex blob.
BOOST_AUTO_TEST_CASE(PeekShowsAnInjectionRecordsSignedBodyAsJson) {
  TestDir dir;
  auto database = Database::Open({.path = dir.path() / "db"});
  BOOST_REQUIRE(database.ok());
  auto store = MessageStore::Open(database->get(), {.self = "plant-a"});
  BOOST_REQUIRE(store.ok());
  flatbuffers::FlatBufferBuilder body;
  const std::vector<uint8_t> uid(15, 0x07);
  body.Finish(wire::CreateInjectionRecordBodyDirect(body, 17, "plant-a", "line1-eol1", "acme-bcm",
                                                    "ks-0017", &uid, wire::RecordOutcome::INJECTED));
  const std::vector<uint8_t> record = schemas::BuildInjectionRecord(
      {body.GetBufferPointer(), body.GetSize()}, "pks-plant-a", std::vector<uint8_t>(64, 0x5a));
  const QueueId records{"kms", "records"};
  BOOST_REQUIRE((*store)->Commit([&](WriteContext& write) -> Status {
    return write.Send(records, wire::MessageType::InjectionRecord, record).status();
  }).ok());

  auto inspector = QueueInspector::Open(dir.path());
  BOOST_REQUIRE_MESSAGE(inspector.ok(), inspector.status().ToString());
  auto messages = (*inspector)->Peek(records, 10);
  BOOST_REQUIRE(messages.ok());
  BOOST_REQUIRE(messages->size() == 1u);
  const std::string& json = (*messages)[0].payload_json;
  std::string uid_hex;
  for (size_t i = 0; i < uid.size(); ++i) uid_hex += "07";
  for (const std::string& expected :
       {std::string(R"("body": {"record_sequence": 17,"plant": "plant-a")"),
        std::string(R"("key_set_id": "ks-0017")"), R"("ecu_uid": ")" + uid_hex + "\"",
        std::string(R"("outcome": "INJECTED")"), std::string(R"("signer": "pks-plant-a")")}) {
    BOOST_TEST(json.find(expected) != std::string::npos, expected << " not in " << json);
  }
}

BOOST_AUTO_TEST_CASE(ADirWithoutKeylineDataIsAClearError) {
  TestDir dir;
  auto inspector = QueueInspector::Open(dir.path());
  BOOST_TEST(inspector.status().code() == StatusCode::kNotFound);
  BOOST_TEST(inspector.status().message() ==
             dir.path().string() + " holds no Keyline data (no RocksDB database there or in db/)");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::broker
