// What a broker link reads from a peer (broker/src/link.cc): a LinkFrame decoded with
// schemas::DecodeVerified<wire::LinkFrame>, then every field HandleFrame reads for each body
// (Hello positions, Data and DataBatch envelopes decoded in place with schemas::DecodeEnvelope,
// Ack, Heartbeat); and the LinkState a data directory keeps per peer (keyline-queue reads it).
// Input: first byte even = LinkFrame, odd = LinkState; the rest is the buffer.
#include <map>
#include <string>

#include "fuzz_support.h"
#include "keyline/wire/link_generated.h"

namespace keyline::fuzz {
namespace {

// link.cc's OnData: the envelope bytes are decoded where they lie in the frame.
void ReadData(const wire::Data* data) {
  if (data == nullptr || data->envelope() == nullptr) return;
  std::span<const uint8_t> bytes(data->envelope()->data(), data->envelope()->size());
  schemas::DecodeError why{};
  auto envelope = schemas::DecodeEnvelope(bytes, {}, &why);
  if (!envelope.ok()) {
    CheckRefusal(envelope.status(), why);
    return;
  }
  const wire::Envelope* e = envelope->envelope;
  (void)schemas::Text(e->sender());
  (void)schemas::Text(e->stream());
  (void)e->sequence();
  (void)e->created_at_us();
  FUZZ_CHECK(!envelope->payload.empty());
  FUZZ_CHECK(envelope->payload.data() >= bytes.data());
  FUZZ_CHECK(envelope->payload.data() + envelope->payload.size() <= bytes.data() + bytes.size());
}

void ReadFrame(const wire::LinkFrame& frame) {
  switch (frame.body_type()) {
    case wire::LinkBody::Hello: {
      const wire::Hello* hello = frame.body_as_Hello();
      FUZZ_CHECK(hello != nullptr);
      (void)hello->version();
      (void)hello->reply();
      (void)hello->backlog();
      (void)hello->max_batch_bytes();
      std::map<std::string, uint64_t> positions;
      if (hello->positions() != nullptr) {
        for (const auto* position : *hello->positions()) {
          if (position == nullptr || position->stream() == nullptr) continue;
          positions[position->stream()->str()] = position->applied_through();
        }
      }
      break;
    }
    case wire::LinkBody::Data:
      ReadData(frame.body_as_Data());
      break;
    case wire::LinkBody::DataBatch: {
      const wire::DataBatch* batch = frame.body_as_DataBatch();
      FUZZ_CHECK(batch != nullptr);
      if (batch->items() == nullptr) break;
      for (const wire::Data* item : *batch->items()) ReadData(item);
      break;
    }
    case wire::LinkBody::Ack: {
      const wire::Ack* ack = frame.body_as_Ack();
      FUZZ_CHECK(ack != nullptr);
      (void)schemas::Text(ack->stream());
      (void)ack->through();
      break;
    }
    case wire::LinkBody::Heartbeat:
      FUZZ_CHECK(frame.body_as_Heartbeat() != nullptr);
      (void)frame.body_as_Heartbeat()->backlog();
      (void)frame.body_as_Heartbeat()->sent_at_us();
      break;
    default:
      break;  // refused as unknown_frame
  }
}

}  // namespace
}  // namespace keyline::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keyline;
  uint8_t selector = 0;
  std::vector<uint8_t> bytes;
  if (!fuzz::Split(data, size, selector, bytes)) return 0;
  if (selector % 2 == 1) {
    (void)fuzz::DecodeAndReadAll<wire::LinkState>(bytes, "LinkState");
    return 0;
  }
  schemas::DecodeError why{};
  auto frame = schemas::DecodeVerified<wire::LinkFrame>(bytes, "LinkFrame", {}, &why);
  if (!frame.ok()) {
    fuzz::CheckRefusal(frame.status(), why);
    return 0;
  }
  fuzz::ReadFrame(**frame);
  return 0;
}
