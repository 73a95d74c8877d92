// Every message table as a payload, the first input byte naming its MessageType (unknown
// numbers included): schemas::VerifyPayload, the check a receiver runs before it reads a
// payload. A verified payload is read whole (each field, string, vector element and nested
// table), printed the way keyline-queue prints it, and sent again inside an Envelope built by
// schemas::BuildEnvelope, which must decode to the same payload. This is the target for the
// kms_pks, pks_injector, records and admin messages.
#include <algorithm>
#include <string>

#include "fuzz_support.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/json.h"
#include "samples.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keyline;
  uint8_t selector = 0;
  std::vector<uint8_t> payload;
  if (!fuzz::Split(data, size, selector, payload)) return 0;
  const auto type = static_cast<wire::MessageType>(selector);

  schemas::DecodeError why{};
  Status verified = schemas::VerifyPayload(type, payload, {}, &why);
  if (!verified.ok()) {
    fuzz::CheckRefusal(verified, why);
    FUZZ_CHECK(schemas::IsKnownMessageType(type) || why == schemas::DecodeError::kUnknownType);
    return 0;
  }
  FUZZ_CHECK(schemas::IsKnownMessageType(type));

  bool matched = false;
  schemas::testing::ForEachMessageTable([&]<typename T>() {
    if (type != schemas::MessageTraits<T>::kType) return;
    matched = true;
    // The same table as the service decodes it.
    auto message = schemas::DecodeMessage<T>(payload);
    FUZZ_CHECK(message.ok());
    (void)schemas::testing::ReadAll(**message);

    schemas::EnvelopeHeader header;
    header.stream = "fuzz";
    header.sequence = 1;
    header.sender = "fuzz-peer";
    const std::vector<uint8_t> envelope =
        schemas::BuildEnvelope(schemas::HeaderFor<T>(header), payload);
    if (envelope.size() > schemas::kMaxMessageBytes) return;
    auto decoded = schemas::DecodeEnvelope(envelope);
    FUZZ_CHECK(decoded.ok());
    FUZZ_CHECK(decoded->type == type);
    FUZZ_CHECK(std::ranges::equal(decoded->payload, payload));
    auto again = schemas::PayloadAs<T>(*decoded);
    FUZZ_CHECK(again.ok());
    (void)schemas::testing::ReadAll(**again);
  });
  FUZZ_CHECK(matched);
  const std::string json = schemas::PayloadToJson(type, payload);
  FUZZ_CHECK(!json.empty() && json.front() == '{');
  return 0;
}
