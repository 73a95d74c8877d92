#include "keyline/schemas/build.h"

namespace keyline::schemas {
namespace {

// Largest scalar in any Keyline table (ulong/long): nested buffers are aligned to it.
constexpr size_t kNestedBufferAlignment = 8;

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> CreateNestedBuffer(
    flatbuffers::FlatBufferBuilder& fbb, std::span<const uint8_t> bytes) {
  fbb.ForceVectorAlignment(bytes.size(), sizeof(uint8_t), kNestedBufferAlignment);
  return fbb.CreateVector(bytes.data(), bytes.size());
}

std::vector<uint8_t> Release(const flatbuffers::FlatBufferBuilder& fbb) {
  std::span<const uint8_t> bytes = FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

}  // namespace

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> CreateBytes(flatbuffers::FlatBufferBuilder& fbb,
                                                              std::span<const uint8_t> bytes) {
  return fbb.CreateVector(bytes.data(), bytes.size());
}

std::span<const uint8_t> FinishedBytes(const flatbuffers::FlatBufferBuilder& fbb) {
  return {fbb.GetBufferPointer(), fbb.GetSize()};
}

std::vector<uint8_t> BuildEnvelope(const EnvelopeHeader& header, std::span<const uint8_t> payload) {
  flatbuffers::FlatBufferBuilder fbb(payload.size() + 256);
  // Children first: FlatBuffers builds back to front.
  auto payload_offset = CreateNestedBuffer(fbb, payload);
  auto sender = fbb.CreateString(header.sender);
  auto stream = fbb.CreateString(header.stream);
  auto message_id = CreateBytes(fbb, header.message_id);
  wire::EnvelopeBuilder envelope(fbb);
  envelope.add_message_id(message_id);
  envelope.add_stream(stream);
  envelope.add_sequence(header.sequence);
  envelope.add_type(header.type);
  envelope.add_sender(sender);
  envelope.add_created_at_us(header.created_at_us);
  envelope.add_payload(payload_offset);
  fbb.Finish(envelope.Finish());
  return Release(fbb);
}

std::vector<uint8_t> BuildInjectionRecord(std::span<const uint8_t> body, std::string_view signer,
                                          std::span<const uint8_t> signature) {
  flatbuffers::FlatBufferBuilder fbb(body.size() + signature.size() + 128);
  auto body_offset = CreateNestedBuffer(fbb, body);
  auto signer_offset = fbb.CreateString(signer.data(), signer.size());
  auto signature_offset = CreateBytes(fbb, signature);
  fbb.Finish(wire::CreateInjectionRecord(fbb, body_offset, signer_offset, signature_offset));
  return Release(fbb);
}

}  // namespace keyline::schemas
