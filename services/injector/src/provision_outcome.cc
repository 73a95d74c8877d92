#include "keyline/injector/provision_outcome.h"

#include <algorithm>

#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/eol_generated.h"

namespace keyline::injector {

std::vector<uint8_t> EncodeEolReply(const ProvisionOutcome& o) {
  flatbuffers::FlatBufferBuilder fbb(512);
  std::vector<flatbuffers::Offset<wire::EolSlotOutcome>> slots;
  for (const SlotOutcome& slot : o.slots) {
    slots.push_back(wire::CreateEolSlotOutcome(fbb, slot.slot,
                                               static_cast<wire::EcuError>(slot.error),
                                               slot.attempts));
  }
  flatbuffers::Offset<wire::EolCertificateOutcome> certificate = 0;
  if (o.certificate) {
    certificate = wire::CreateEolCertificateOutcome(
        fbb, fbb.CreateString(o.certificate->slot), static_cast<wire::EcuError>(o.certificate->error),
        fbb.CreateString(o.certificate->certificate), fbb.CreateString(o.certificate->detail));
  }
  fbb.Finish(wire::CreateEolReply(
      fbb, fbb.CreateString(o.outcome), fbb.CreateString(o.message), fbb.CreateString(o.product),
      schemas::CreateBytes(fbb, o.ecu_uid), fbb.CreateString(o.station), fbb.CreateString(o.plant),
      fbb.CreateString(o.key_set_id), fbb.CreateString(o.package_id), fbb.CreateVector(slots),
      fbb.CreateString(o.report), o.repeated, certificate));
  std::span<const uint8_t> bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

StatusOr<ProvisionOutcome> DecodeEolReply(std::span<const uint8_t> bytes) {
  ASSIGN_OR_RETURN(const wire::EolReply* reply,
                   schemas::DecodeVerified<wire::EolReply>(bytes, "EolReply"));
  ProvisionOutcome o;
  o.outcome = std::string(schemas::Text(reply->outcome()));
  if (o.outcome.empty()) return InvalidArgumentError("EolReply.outcome: missing");
  o.message = std::string(schemas::Text(reply->message()));
  o.product = std::string(schemas::Text(reply->product()));
  if (schemas::CheckFixedBytes(reply->ecu_uid(), schemas::kEcuUidBytes, "EolReply.ecu_uid").ok()) {
    std::copy_n(reply->ecu_uid()->data(), o.ecu_uid.size(), o.ecu_uid.begin());
  }
  o.station = std::string(schemas::Text(reply->station()));
  o.plant = std::string(schemas::Text(reply->plant()));
  o.key_set_id = std::string(schemas::Text(reply->key_set_id()));
  o.package_id = std::string(schemas::Text(reply->package_id()));
  if (reply->slots() != nullptr) {
    for (const wire::EolSlotOutcome* slot : *reply->slots()) {
      o.slots.push_back(SlotOutcome{slot->slot(), static_cast<EcuError>(slot->ecu_error()),
                                    slot->attempts()});
    }
  }
  if (const wire::EolCertificateOutcome* c = reply->certificate()) {
    o.certificate = CertificateOutcome{std::string(schemas::Text(c->slot())),
                                       static_cast<EcuError>(c->ecu_error()),
                                       std::string(schemas::Text(c->certificate())),
                                       std::string(schemas::Text(c->detail()))};
  }
  o.report = std::string(schemas::Text(reply->report()));
  o.repeated = reply->repeated();
  return o;
}

}  // namespace keyline::injector
