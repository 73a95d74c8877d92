#include "keyline/schemas/decode.h"

#include <algorithm>
#include <string>

#include "keyline/wire/link_generated.h"

namespace keyline::schemas {
namespace {

Status Refuse(DecodeError reason, Status status, DecodeError* error) {
  if (error != nullptr) *error = reason;
  return status;
}

std::string Prefix(std::string_view what) { return std::string(what) + ": "; }

// The envelope's own name in errors: sequence and type only. Stream and sender are peer-chosen
// text and stay out of error messages (the caller logs the authenticated peer).
std::string EnvelopeName(const wire::Envelope& envelope) {
  return "Envelope #" + std::to_string(envelope.sequence()) + " (" +
         MessageTypeName(envelope.type()) + ")";
}

// A union's type and value agree: a known type has a value, NONE has none. A type newer than
// this build may come with a value the Verifier did not look at; readers refuse such a type.
template <typename Type>
Status CheckUnion(Type type, Type max, const void* value, std::string_view what,
                  std::string_view field, DecodeError* error) {
  const bool known = type != Type::NONE && type <= max;
  if (known && value == nullptr) {
    return Refuse(DecodeError::kInvalidField,
                  InvalidArgumentError(Prefix(what) + std::string(field) + " is missing (its type is " +
                                       std::to_string(static_cast<unsigned>(type)) + ")"),
                  error);
  }
  if (type == Type::NONE && value != nullptr) {
    return Refuse(DecodeError::kInvalidField,
                  InvalidArgumentError(Prefix(what) + std::string(field) +
                                       " is present but its type is NONE"),
                  error);
  }
  return Status::Ok();
}

}  // namespace

std::string_view DecodeErrorName(DecodeError error) {
  switch (error) {
    case DecodeError::kEmpty:
      return "empty";
    case DecodeError::kTooLarge:
      return "too_large";
    case DecodeError::kMalformed:
      return "malformed";
    case DecodeError::kUnknownType:
      return "unknown_type";
    case DecodeError::kInvalidField:
      return "invalid_field";
  }
  return "unknown_decode_error";
}

bool IsKnownMessageType(wire::MessageType type) {
  return type != wire::MessageType::NONE && type >= wire::MessageType::MIN &&
         type <= wire::MessageType::MAX;
}

std::string MessageTypeName(wire::MessageType type) {
  if (type == wire::MessageType::NONE) return "NONE";
  if (!IsKnownMessageType(type)) {
    return "MessageType " + std::to_string(static_cast<unsigned>(type));
  }
  return wire::EnumNameMessageType(type);
}

namespace internal {

Status CheckFrameSize(std::span<const uint8_t> bytes, std::string_view what,
                      const DecodeLimits& limits, DecodeError* error) {
  if (bytes.empty()) {
    return Refuse(DecodeError::kEmpty, InvalidArgumentError(Prefix(what) + "empty buffer"), error);
  }
  // The Verifier cannot address 2 GiB or more, whatever the caller's limit says.
  const size_t max_bytes = std::min<size_t>(limits.max_bytes, FLATBUFFERS_MAX_BUFFER_SIZE - 1);
  if (bytes.size() > max_bytes) {
    return Refuse(DecodeError::kTooLarge,
                  ResourceExhaustedError(Prefix(what) + "buffer of " +
                                         std::to_string(bytes.size()) + " bytes exceeds the " +
                                         std::to_string(max_bytes) + "-byte message limit"),
                  error);
  }
  return Status::Ok();
}

Status MalformedError(std::span<const uint8_t> bytes, std::string_view what, DecodeError* error) {
  return Refuse(DecodeError::kMalformed,
                InvalidArgumentError(Prefix(what) + "buffer of " + std::to_string(bytes.size()) +
                                     " bytes failed FlatBuffers verification (truncated, "
                                     "corrupt, or another table)"),
                error);
}

Status CheckUnions(const wire::AdminRequest& request, std::string_view what, DecodeError* error) {
  return CheckUnion(request.command_type(), wire::AdminCommand::MAX, request.command(), what,
                    "command", error);
}

Status CheckUnions(const wire::LinkFrame& frame, std::string_view what, DecodeError* error) {
  return CheckUnion(frame.body_type(), wire::LinkBody::MAX, frame.body(), what, "body", error);
}

flatbuffers::Verifier::Options VerifierOptions(const DecodeLimits& limits) {
  flatbuffers::Verifier::Options options;
  options.max_depth = limits.max_depth;
  options.max_tables = limits.max_tables;
  options.check_alignment = true;
  options.check_nested_flatbuffers = true;
  return options;
}

}  // namespace internal

Status VerifyPayload(wire::MessageType type, std::span<const uint8_t> payload,
                     const DecodeLimits& limits, DecodeError* error) {
  // No default: -Wswitch (with -Werror) makes a new MessageType without a case a build error.
  switch (type) {
    case wire::MessageType::NONE:
      break;
    case wire::MessageType::StockBatch:
      return DecodeMessage<wire::StockBatch>(payload, limits, error).status();
    case wire::MessageType::ConfigUpdate:
      return DecodeMessage<wire::ConfigUpdate>(payload, limits, error).status();
    case wire::MessageType::VerificationRequest:
      return DecodeMessage<wire::VerificationRequest>(payload, limits, error).status();
    case wire::MessageType::StockRequest:
      return DecodeMessage<wire::StockRequest>(payload, limits, error).status();
    case wire::MessageType::InjectionRecord:
      return DecodeMessage<wire::InjectionRecord>(payload, limits, error).status();
    case wire::MessageType::PlantStatus:
      return DecodeMessage<wire::PlantStatus>(payload, limits, error).status();
    case wire::MessageType::VerificationWatermark:
      return DecodeMessage<wire::VerificationWatermark>(payload, limits, error).status();
    case wire::MessageType::KeyPackageRequest:
      return DecodeMessage<wire::KeyPackageRequest>(payload, limits, error).status();
    case wire::MessageType::KeyPackage:
      return DecodeMessage<wire::KeyPackage>(payload, limits, error).status();
    case wire::MessageType::InjectionResult:
      return DecodeMessage<wire::InjectionResult>(payload, limits, error).status();
    case wire::MessageType::AdminRequest:
      return DecodeMessage<wire::AdminRequest>(payload, limits, error).status();
    case wire::MessageType::AdminReply:
      return DecodeMessage<wire::AdminReply>(payload, limits, error).status();
    case wire::MessageType::PlantCaRequest:
      return DecodeMessage<wire::PlantCaRequest>(payload, limits, error).status();
    case wire::MessageType::PlantCaCsr:
      return DecodeMessage<wire::PlantCaCsr>(payload, limits, error).status();
    case wire::MessageType::CertificateRequest:
      return DecodeMessage<wire::CertificateRequest>(payload, limits, error).status();
    case wire::MessageType::CertificateIssued:
      return DecodeMessage<wire::CertificateIssued>(payload, limits, error).status();
    case wire::MessageType::CertificateBudgetRequest:
      return DecodeMessage<wire::CertificateBudgetRequest>(payload, limits, error).status();
    case wire::MessageType::CertificateBudgetGrant:
      return DecodeMessage<wire::CertificateBudgetGrant>(payload, limits, error).status();
  }
  return Refuse(DecodeError::kUnknownType,
                InvalidArgumentError("unknown message type " + MessageTypeName(type) +
                                     " (this build knows 1.." +
                                     std::to_string(static_cast<unsigned>(wire::MessageType::MAX)) +
                                     "; a newer sender needs a newer receiver)"),
                error);
}

StatusOr<VerifiedEnvelope> DecodeEnvelope(std::span<const uint8_t> bytes,
                                          const DecodeLimits& limits, DecodeError* error) {
  ASSIGN_OR_RETURN(const wire::Envelope* envelope,
                   DecodeVerified<wire::Envelope>(bytes, "Envelope", limits, error));
  // Names for error messages are built only on the way out: this runs once per received
  // message, and nearly every message is fine.
  if (envelope->message_id() == nullptr || envelope->message_id()->size() != kMessageIdBytes) {
    Status id_ok = CheckFixedBytes(envelope->message_id(), kMessageIdBytes,
                                   EnvelopeName(*envelope) + ": message_id");
    return Refuse(DecodeError::kInvalidField, id_ok, error);
  }

  if (!IsKnownMessageType(envelope->type())) {
    return Refuse(
        DecodeError::kUnknownType,
        InvalidArgumentError(EnvelopeName(*envelope) + ": unknown message type (this build knows 1.." +
                             std::to_string(static_cast<unsigned>(wire::MessageType::MAX)) +
                             "; a newer sender needs a newer receiver)"),
        error);
  }

  std::span<const uint8_t> payload = Bytes(envelope->payload());
  if (payload.empty()) {
    return Refuse(DecodeError::kInvalidField,
                  InvalidArgumentError(EnvelopeName(*envelope) + ": payload is missing or empty"),
                  error);
  }
  if (Status payload_ok = VerifyPayload(envelope->type(), payload, limits, error);
      !payload_ok.ok()) {
    return payload_ok.WithContext(EnvelopeName(*envelope) + ": payload");
  }

  VerifiedEnvelope verified;
  verified.envelope = envelope;
  verified.type = envelope->type();
  std::copy_n(envelope->message_id()->data(), kMessageIdBytes, verified.message_id.begin());
  verified.payload = payload;
  return verified;
}

StatusOr<VerifiedRecord> DecodeInjectionRecord(std::span<const uint8_t> bytes,
                                               const DecodeLimits& limits, DecodeError* error) {
  // The Verifier also verifies the nested body (nested_flatbuffer in records.fbs).
  ASSIGN_OR_RETURN(const wire::InjectionRecord* record,
                   DecodeMessage<wire::InjectionRecord>(bytes, limits, error));
  std::span<const uint8_t> body = Bytes(record->body());
  if (body.empty()) {
    return Refuse(DecodeError::kInvalidField,
                  InvalidArgumentError("InjectionRecord: body is missing or empty"), error);
  }
  Status signature_ok =
      CheckFixedBytes(record->signature(), kSignatureBytes, "InjectionRecord: signature");
  if (!signature_ok.ok()) return Refuse(DecodeError::kInvalidField, signature_ok, error);

  VerifiedRecord verified;
  verified.record = record;
  verified.body = record->body_nested_root();
  verified.signed_bytes = body;
  verified.signature = Bytes(record->signature());
  return verified;
}

}  // namespace keyline::schemas
