// The decode API itself: limits, error reasons and their names, and the field helpers.
#include "keyline/schemas/decode.h"

#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "corruption.h"
#include "keyline/schemas/fields.h"
#include "samples.h"

namespace keyline::schemas::testing {
namespace {

BOOST_AUTO_TEST_SUITE(Decode)

BOOST_AUTO_TEST_CASE(DecodeErrorNamesAreStableForMetrics) {
  BOOST_TEST(DecodeErrorName(DecodeError::kEmpty) == "empty");
  BOOST_TEST(DecodeErrorName(DecodeError::kTooLarge) == "too_large");
  BOOST_TEST(DecodeErrorName(DecodeError::kMalformed) == "malformed");
  BOOST_TEST(DecodeErrorName(DecodeError::kUnknownType) == "unknown_type");
  BOOST_TEST(DecodeErrorName(DecodeError::kInvalidField) == "invalid_field");
  // Counters are indexed by the value: the last one must fit the declared count.
  BOOST_TEST(static_cast<size_t>(DecodeError::kInvalidField) + 1 == kDecodeErrorCount);
}

BOOST_AUTO_TEST_CASE(MessageTypeNamesCoverKnownNoneAndUnknown) {
  BOOST_TEST(MessageTypeName(wire::MessageType::KeyPackage) == "KeyPackage");
  BOOST_TEST(MessageTypeName(wire::MessageType::NONE) == "NONE");
  BOOST_TEST(MessageTypeName(static_cast<wire::MessageType>(42)) == "MessageType 42");
  BOOST_TEST(!IsKnownMessageType(wire::MessageType::NONE));
  BOOST_TEST(IsKnownMessageType(wire::MessageType::StockBatch));
  BOOST_TEST(IsKnownMessageType(wire::MessageType::MAX));
  BOOST_TEST(!IsKnownMessageType(static_cast<wire::MessageType>(19)));
}

BOOST_AUTO_TEST_CASE(ErrorsNameWhatTheCallerDecoded) {
  const std::vector<uint8_t> garbage(12, 0xab);
  StatusOr<const wire::StockRequest*> decoded =
      DecodeVerified<wire::StockRequest>(garbage, "records/17");
  BOOST_REQUIRE(!decoded.ok());
  BOOST_TEST(decoded.status().code() == StatusCode::kInvalidArgument);
  BOOST_TEST(decoded.status().message() ==
             "records/17: buffer of 12 bytes failed FlatBuffers verification (truncated, "
             "corrupt, or another table)");
}

BOOST_AUTO_TEST_CASE(ReasonIsLeftUntouchedOnSuccess) {
  const std::vector<uint8_t> bytes = Sample<wire::StockRequest>();
  DecodeError why = DecodeError::kUnknownType;
  BOOST_TEST(DecodeMessage<wire::StockRequest>(bytes, {}, &why).ok());
  BOOST_TEST((why == DecodeError::kUnknownType));
  BOOST_TEST(DecodeMessage<wire::StockRequest>(bytes).ok());  // no reason pointer at all
}

BOOST_AUTO_TEST_CASE(TableLimitBoundsTheVerifierWork) {
  // The sample StockBatch holds 4 tables (the batch and 3 key sets).
  const std::vector<uint8_t> bytes = Sample<wire::StockBatch>();
  DecodeLimits limits;
  limits.max_tables = 4;
  BOOST_TEST(DecodeMessage<wire::StockBatch>(bytes, limits).ok());
  limits.max_tables = 3;
  DecodeError why{};
  StatusOr<const wire::StockBatch*> decoded = DecodeMessage<wire::StockBatch>(bytes, limits, &why);
  BOOST_TEST(!decoded.ok());
  BOOST_TEST((why == DecodeError::kMalformed));
}

BOOST_AUTO_TEST_CASE(DepthLimitBoundsNesting) {
  // The Verifier counts nested tables: ConfigUpdate -> Product -> SlotLayout is 3 deep.
  const std::vector<uint8_t> bytes = Sample<wire::ConfigUpdate>();
  DecodeLimits limits;
  limits.max_depth = 3;
  BOOST_TEST(DecodeMessage<wire::ConfigUpdate>(bytes, limits).ok());
  limits.max_depth = 2;
  DecodeError why{};
  BOOST_TEST(!DecodeMessage<wire::ConfigUpdate>(bytes, limits, &why).ok());
  BOOST_TEST((why == DecodeError::kMalformed));
}

BOOST_AUTO_TEST_CASE(LargestRealisticStockBatchFitsTheDefaultLimits) {
  // Key sets of 10 slots with 200-byte wrapped blobs: 3500 fit in the 1 MiB frame limit,
  // 5000 do not. A PKS asks for stock in batches that fit.
  auto build = [](int count) {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::WrappedKeySet>> sets;
    const std::vector<uint8_t> wrapped(200, 0x5a);
    const std::vector<uint8_t> slots = {1, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    for (int i = 0; i < count; ++i) {
      sets.push_back(wire::CreateWrappedKeySetDirect(fbb, ("ks-" + std::to_string(i)).c_str(),
                                                     &wrapped, &slots));
    }
    fbb.Finish(wire::CreateStockBatchDirect(fbb, "req", "batch", "plant-a", "p", &sets));
    std::span<const uint8_t> bytes = FinishedBytes(fbb);
    return std::vector<uint8_t>(bytes.begin(), bytes.end());
  };
  const std::vector<uint8_t> fits = build(3500);
  BOOST_TEST_MESSAGE("3500 key sets: " << fits.size() << " bytes");
  BOOST_TEST(DecodeMessage<wire::StockBatch>(fits).ok());
  const std::vector<uint8_t> too_big = build(5000);
  DecodeError why{};
  BOOST_TEST(!DecodeMessage<wire::StockBatch>(too_big, {}, &why).ok());
  BOOST_TEST((why == DecodeError::kTooLarge));
}

BOOST_AUTO_TEST_CASE(AbsentFieldsReadAsEmpty) {
  BOOST_TEST(Bytes(nullptr).empty());
  BOOST_TEST(Text(nullptr).empty());
}

BOOST_AUTO_TEST_CASE(FixedBytesCheckNamesFieldAndBothLengths) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> sixty_three(63, 1);
  fbb.Finish(fbb.CreateVector(sixty_three));
  const auto* vector = flatbuffers::GetRoot<flatbuffers::Vector<uint8_t>>(fbb.GetBufferPointer());
  Status status = CheckFixedBytes(vector, kSignatureBytes, "InjectionRecord.signature");
  BOOST_TEST(status.code() == StatusCode::kInvalidArgument);
  BOOST_TEST(status.message() == "InjectionRecord.signature: expected 64 bytes, got 63");
  BOOST_TEST(CheckFixedBytes(vector, 63, "x").ok());
  BOOST_TEST(CheckFixedBytes(nullptr, kEcuUidBytes, "ecu_uid").message() ==
             "ecu_uid: missing (expected 15 bytes)");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing
