// link.fbs: every link frame round-trips, and truncated or garbage frames are refused.
#include <boost/test/unit_test.hpp>
#include <random>
#include <string>
#include <vector>

#include "corruption.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/link_generated.h"

namespace keyline::schemas::testing {
namespace {

std::vector<uint8_t> Finish(flatbuffers::FlatBufferBuilder& builder) {
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

std::vector<uint8_t> SampleHello() {
  flatbuffers::FlatBufferBuilder builder;
  std::vector<flatbuffers::Offset<wire::StreamPosition>> positions = {
      wire::CreateStreamPosition(builder, builder.CreateString("records"), 41),
      wire::CreateStreamPosition(builder, builder.CreateString("status"), 7)};
  auto hello = wire::CreateHello(builder, 1, true, builder.CreateVector(positions), 12);
  builder.Finish(wire::CreateLinkFrame(builder, wire::LinkBody::Hello, hello.Union()));
  return Finish(builder);
}

std::vector<uint8_t> SampleData() {
  flatbuffers::FlatBufferBuilder builder;
  std::vector<uint8_t> envelope = Counting(40, 3);
  auto data = wire::CreateData(builder, builder.CreateVector(envelope));
  builder.Finish(wire::CreateLinkFrame(builder, wire::LinkBody::Data, data.Union()));
  return Finish(builder);
}

std::vector<uint8_t> SampleDataBatch() {
  flatbuffers::FlatBufferBuilder builder;
  std::vector<flatbuffers::Offset<wire::Data>> items;
  for (uint8_t first : {3, 50, 100}) {
    std::vector<uint8_t> envelope = Counting(40, first);
    items.push_back(wire::CreateData(builder, builder.CreateVector(envelope)));
  }
  auto batch = wire::CreateDataBatch(builder, builder.CreateVector(items));
  builder.Finish(wire::CreateLinkFrame(builder, wire::LinkBody::DataBatch, batch.Union()));
  return Finish(builder);
}

const wire::LinkFrame* Decode(const std::vector<uint8_t>& bytes) {
  auto frame = DecodeVerified<wire::LinkFrame>(bytes, "LinkFrame");
  BOOST_REQUIRE_MESSAGE(frame.ok(), frame.status().ToString());
  return *frame;
}

BOOST_AUTO_TEST_SUITE(Link)

BOOST_AUTO_TEST_CASE(HelloRoundTripsWithPositionsAndBacklog) {
  const std::vector<uint8_t> bytes = SampleHello();
  const wire::Hello* hello = Decode(bytes)->body_as_Hello();
  BOOST_REQUIRE(hello != nullptr);
  BOOST_TEST(hello->version() == 1);
  BOOST_TEST(hello->reply());
  BOOST_TEST(hello->backlog() == 12u);
  BOOST_REQUIRE(hello->positions()->size() == 2u);
  BOOST_TEST(hello->positions()->Get(0)->stream()->str() == "records");
  BOOST_TEST(hello->positions()->Get(0)->applied_through() == 41u);
}

BOOST_AUTO_TEST_CASE(DataAckAndHeartbeatRoundTrip) {
  const std::vector<uint8_t> data_bytes = SampleData();
  const wire::Data* data = Decode(data_bytes)->body_as_Data();
  BOOST_REQUIRE(data != nullptr);
  BOOST_TEST(std::vector<uint8_t>(data->envelope()->begin(), data->envelope()->end()) ==
             Counting(40, 3));

  flatbuffers::FlatBufferBuilder ack_builder;
  auto ack = wire::CreateAck(ack_builder, ack_builder.CreateString("stock"), 99);
  ack_builder.Finish(wire::CreateLinkFrame(ack_builder, wire::LinkBody::Ack, ack.Union()));
  const std::vector<uint8_t> ack_bytes = Finish(ack_builder);
  const wire::Ack* decoded_ack = Decode(ack_bytes)->body_as_Ack();
  BOOST_REQUIRE(decoded_ack != nullptr);
  BOOST_TEST(decoded_ack->stream()->str() == "stock");
  BOOST_TEST(decoded_ack->through() == 99u);

  flatbuffers::FlatBufferBuilder beat_builder;
  auto beat = wire::CreateHeartbeat(beat_builder, 1764086400000000, 3);
  beat_builder.Finish(wire::CreateLinkFrame(beat_builder, wire::LinkBody::Heartbeat, beat.Union()));
  const std::vector<uint8_t> beat_bytes = Finish(beat_builder);
  const wire::Heartbeat* decoded_beat = Decode(beat_bytes)->body_as_Heartbeat();
  BOOST_REQUIRE(decoded_beat != nullptr);
  BOOST_TEST(decoded_beat->backlog() == 3u);
}

BOOST_AUTO_TEST_CASE(DataBatchRoundTripsItsEnvelopesInOrder) {
  const std::vector<uint8_t> bytes = SampleDataBatch();
  const wire::DataBatch* batch = Decode(bytes)->body_as_DataBatch();
  BOOST_REQUIRE(batch != nullptr);
  BOOST_REQUIRE(batch->items()->size() == 3u);
  uint8_t first[] = {3, 50, 100};
  for (size_t i = 0; i < 3; ++i) {
    const auto* envelope = batch->items()->Get(static_cast<flatbuffers::uoffset_t>(i))->envelope();
    BOOST_TEST(std::vector<uint8_t>(envelope->begin(), envelope->end()) == Counting(40, first[i]));
  }
}

// A Hello from a release before max_batch_bytes reads as 0 (send no batches); a new Hello
// carries the limit, and an older reader, which does not know the field, still reads the rest.
BOOST_AUTO_TEST_CASE(HelloWithoutMaxBatchBytesReadsAsZero) {
  const std::vector<uint8_t> old_bytes = SampleHello();  // written without the field
  BOOST_TEST(Decode(old_bytes)->body_as_Hello()->max_batch_bytes() == 0u);

  flatbuffers::FlatBufferBuilder builder;
  auto hello = wire::CreateHello(builder, 1, false, 0, 5, 64 * 1024);
  builder.Finish(wire::CreateLinkFrame(builder, wire::LinkBody::Hello, hello.Union()));
  const std::vector<uint8_t> new_bytes = Finish(builder);
  const wire::Hello* decoded = Decode(new_bytes)->body_as_Hello();
  BOOST_TEST(decoded->max_batch_bytes() == 64u * 1024u);
  BOOST_TEST(decoded->version() == 1);
  BOOST_TEST(decoded->backlog() == 5u);
}

BOOST_AUTO_TEST_CASE(TruncatedLinkFramesAreRejected) {
  for (const auto& bytes : {SampleHello(), SampleData(), SampleDataBatch()}) {
    for (size_t cut = 0; cut + kMaxTailPadding < bytes.size(); ++cut) {
      const std::vector<uint8_t> truncated(bytes.begin(), bytes.begin() + cut);
      DecodeError why{};
      auto frame = DecodeVerified<wire::LinkFrame>(truncated, "LinkFrame", {}, &why);
      BOOST_TEST(!frame.ok(), "a frame cut to " << cut << " of " << bytes.size()
                                                << " bytes was accepted");
    }
  }
}

BOOST_AUTO_TEST_CASE(GarbageLinkFramesAreRejectedOrReadSafely) {
  std::mt19937 random(kCorruptionSeed);
  BOOST_TEST_MESSAGE("seed " << kCorruptionSeed);
  for (int round = 0; round < 500; ++round) {
    std::vector<uint8_t> bytes = round % 3 == 0   ? SampleHello()
                                 : round % 3 == 1 ? SampleData()
                                                  : SampleDataBatch();
    bytes[random() % bytes.size()] ^= static_cast<uint8_t>(1u << (random() % 8));
    auto frame = DecodeVerified<wire::LinkFrame>(bytes, "LinkFrame");
    if (!frame.ok()) continue;
    // Accepted after a flip: every field must still read within the buffer.
    if (const auto* hello = (*frame)->body_as_Hello(); hello != nullptr && hello->positions()) {
      for (const auto* position : *hello->positions()) {
        if (position != nullptr && position->stream() != nullptr) (void)position->stream()->str();
      }
    }
    if (const auto* data = (*frame)->body_as_Data(); data != nullptr && data->envelope()) {
      (void)std::vector<uint8_t>(data->envelope()->begin(), data->envelope()->end());
    }
    if (const auto* batch = (*frame)->body_as_DataBatch(); batch != nullptr && batch->items()) {
      for (const auto* item : *batch->items()) {
        if (item != nullptr && item->envelope()) {
          (void)std::vector<uint8_t>(item->envelope()->begin(), item->envelope()->end());
        }
      }
    }
  }
  const std::string text = "definitely not a link frame";
  const std::vector<uint8_t> garbage(text.begin(), text.end());
  BOOST_TEST(!DecodeVerified<wire::LinkFrame>(garbage, "LinkFrame").ok());
}

// Found by tests/fuzz/fuzz_link (kept in tests/fuzz/corpus/fuzz_link/): a frame whose body type
// says Hello but that has no body. The Verifier accepted it, body_as_Hello() returned null, and
// the link dereferenced it: one frame from a peer crashed the KMS or a PKS.
BOOST_AUTO_TEST_CASE(BodyTypeWithoutBodyIsRefused) {
  const std::vector<uint8_t> crash = {0x08, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
                                      0x08, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01};
  DecodeError why{};
  auto decoded = DecodeVerified<wire::LinkFrame>(crash, "LinkFrame", {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
  BOOST_TEST(decoded.status().message() == "LinkFrame: body is missing (its type is 1)");

  for (auto type : {wire::LinkBody::Data, wire::LinkBody::Ack, wire::LinkBody::Heartbeat,
                    wire::LinkBody::DataBatch}) {
    flatbuffers::FlatBufferBuilder builder;
    wire::LinkFrameBuilder frame(builder);
    frame.add_body_type(type);
    builder.Finish(frame.Finish());
    const std::vector<uint8_t> bytes = Finish(builder);
    BOOST_TEST(!DecodeVerified<wire::LinkFrame>(bytes, "LinkFrame").ok());
  }
}

BOOST_AUTO_TEST_CASE(BodyWithoutTypeIsRefused) {
  flatbuffers::FlatBufferBuilder builder;
  auto ack = wire::CreateAck(builder, builder.CreateString("records"), 3);
  wire::LinkFrameBuilder frame(builder);
  frame.add_body(ack.Union());
  builder.Finish(frame.Finish());
  const std::vector<uint8_t> bytes = Finish(builder);
  DecodeError why{};
  auto decoded = DecodeVerified<wire::LinkFrame>(bytes, "LinkFrame", {}, &why);
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST((why == DecodeError::kInvalidField));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing
