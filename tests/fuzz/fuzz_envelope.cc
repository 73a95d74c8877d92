// Envelope frames as a PKS, KMS or injector receives them inside a link's Data frame:
// schemas::DecodeEnvelope (the envelope and its payload, verified as the table its type names),
// then what a receiver reads: the header, the payload as its table (every field), the payload
// as keyline-queue prints it, and the envelope rebuilt with schemas::BuildEnvelope, which must
// decode to the same message.
#include <algorithm>
#include <string>

#include "fuzz_support.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/json.h"
#include "samples.h"

namespace keyline::fuzz {
namespace {

namespace testing = schemas::testing;

uint64_t ReadPayload(const schemas::VerifiedEnvelope& envelope) {
  uint64_t sum = 0;
  bool matched = false;
  testing::ForEachMessageTable([&]<typename T>() {
    if (envelope.type != schemas::MessageTraits<T>::kType) return;
    auto payload = schemas::PayloadAs<T>(envelope);
    FUZZ_CHECK(payload.ok());
    sum += testing::ReadAll(**payload);
    matched = true;
  });
  FUZZ_CHECK(matched);
  return sum;
}

void CheckRebuilt(const schemas::VerifiedEnvelope& decoded) {
  const wire::Envelope& e = *decoded.envelope;
  schemas::EnvelopeHeader header;
  header.message_id = decoded.message_id;
  header.stream = std::string(schemas::Text(e.stream()));
  header.sequence = e.sequence();
  header.type = decoded.type;
  header.sender = std::string(schemas::Text(e.sender()));
  header.created_at_us = e.created_at_us();
  const std::vector<uint8_t> rebuilt = schemas::BuildEnvelope(header, decoded.payload);
  if (rebuilt.size() > schemas::kMaxMessageBytes) return;

  auto again = schemas::DecodeEnvelope(rebuilt);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->type == decoded.type);
  FUZZ_CHECK(again->message_id == decoded.message_id);
  FUZZ_CHECK(std::ranges::equal(again->payload, decoded.payload));
  // The builder places the payload 8-byte aligned within the envelope (build.h).
  FUZZ_CHECK((again->payload.data() - rebuilt.data()) % 8 == 0);
  const wire::Envelope& r = *again->envelope;
  FUZZ_CHECK(schemas::Text(r.stream()) == header.stream);
  FUZZ_CHECK(schemas::Text(r.sender()) == header.sender);
  FUZZ_CHECK(r.sequence() == header.sequence);
  FUZZ_CHECK(r.created_at_us() == header.created_at_us);
}

}  // namespace
}  // namespace keyline::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keyline;
  const std::vector<uint8_t> bytes = fuzz::Copy({data, size});
  schemas::DecodeError why{};
  auto decoded = schemas::DecodeEnvelope(bytes, {}, &why);
  if (!decoded.ok()) {
    fuzz::CheckRefusal(decoded.status(), why);
    return 0;
  }
  const schemas::VerifiedEnvelope& envelope = *decoded;
  FUZZ_CHECK(schemas::IsKnownMessageType(envelope.type));
  FUZZ_CHECK(!envelope.payload.empty());
  FUZZ_CHECK(envelope.payload.data() >= bytes.data());
  FUZZ_CHECK(envelope.payload.data() + envelope.payload.size() <= bytes.data() + bytes.size());
  FUZZ_CHECK(std::ranges::equal(envelope.message_id,
                                schemas::Bytes(envelope.envelope->message_id())));
  (void)schemas::testing::ReadAll(*envelope.envelope);
  (void)fuzz::ReadPayload(envelope);
  const std::string json = schemas::PayloadToJson(envelope.type, envelope.payload);
  FUZZ_CHECK(!json.empty() && json.front() == '{');
  fuzz::CheckRebuilt(envelope);
  return 0;
}
