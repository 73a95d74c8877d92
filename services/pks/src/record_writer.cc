// RecordOutcome: the one place a reserved key set becomes INJECTED or BURNED.
#include <flatbuffers/flatbuffers.h>

#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/wire/records_generated.h"
#include "plant_core.h"

namespace keyline::pks {

Status RecordOutcome(PlantCore& core, broker::WriteContext& write, KeySet key_set,
                     const std::vector<SlotVerdict>& verdicts, std::string burn_reason,
                     const CertificateVerdict* certificate) {
  bool injected = burn_reason.empty() && !verdicts.empty();
  for (const SlotVerdict& verdict : verdicts) {
    if (!verdict.proven) {
      injected = false;
      if (burn_reason.empty()) burn_reason = verdict.problem;
    }
  }
  const Reservation& reservation = *key_set.reservation;
  const std::optional<ReservedCertificate>& reserved = reservation.certificate;
  if (reserved && (certificate == nullptr || !certificate->confirmed)) {
    injected = false;
    if (burn_reason.empty() && certificate != nullptr) burn_reason = certificate->problem;
  }
  if (!injected && burn_reason.empty()) burn_reason = "no slot was proven";
  int64_t now = core.now_us();
  uint64_t sequence = core.state->record_sequence() + 1;

  flatbuffers::FlatBufferBuilder fbb(512);
  std::vector<flatbuffers::Offset<wire::RecordSlot>> slots;
  for (const SlotVerdict& verdict : verdicts) {
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> m4 = 0;
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> m5 = 0;
    if (verdict.proof) {
      m4 = schemas::CreateBytes(fbb, verdict.proof->m4);
      m5 = schemas::CreateBytes(fbb, verdict.proof->m5);
    }
    slots.push_back(wire::CreateRecordSlot(fbb, verdict.layout.slot, verdict.layout.auth_slot,
                                           verdict.layout.counter, verdict.layout.flags, m4, m5));
  }
  // An issued certificate is in the record whatever the outcome: the OEM must know of every
  // certificate that exists, confirmed or not.
  flatbuffers::Offset<wire::RecordCertificate> record_certificate = 0;
  if (reserved && reserved->issued()) {
    bool has_confirmation = certificate != nullptr && !certificate->confirmation.empty();
    record_certificate = wire::CreateRecordCertificate(
        fbb, fbb.CreateString(reserved->slot.name), fbb.CreateString(reserved->certificate),
        fbb.CreateString(reserved->chain), schemas::CreateBytes(fbb, reserved->confirm_challenge),
        has_confirmation ? schemas::CreateBytes(fbb, certificate->confirmation) : 0);
  }
  auto body = wire::CreateInjectionRecordBody(
      fbb, sequence, fbb.CreateString(core.plant_id), fbb.CreateString(reservation.station),
      fbb.CreateString(key_set.product), fbb.CreateString(key_set.id),
      schemas::CreateBytes(fbb, reservation.ecu_uid),
      injected ? wire::RecordOutcome::INJECTED : wire::RecordOutcome::BURNED,
      fbb.CreateString(injected ? std::string() : burn_reason), now, fbb.CreateVector(slots),
      record_certificate);
  fbb.Finish(body);
  std::span<const uint8_t> body_bytes = schemas::FinishedBytes(fbb);
  ASSIGN_OR_RETURN(hsm::Signature signature, core.keys->SignRecord(body_bytes));
  std::vector<uint8_t> record = schemas::BuildInjectionRecord(body_bytes, core.plant_id, signature);
  RETURN_IF_ERROR(write.Send({kKmsPeer, kRecordsStream}, wire::MessageType::InjectionRecord, record)
                      .status());

  key_set.state = injected ? KeySetState::kInjected : KeySetState::kBurned;
  key_set.decided_at_us = now;
  key_set.burn_reason = injected ? std::string() : burn_reason;
  key_set.record_sequence = sequence;
  if (injected) {
    spdlog::info("key set {} INJECTED into ECU {} at station {} (record {})", key_set.id,
                 ToHex(reservation.ecu_uid), reservation.station, sequence);
  } else {
    spdlog::warn("key set {} BURNED for ECU {} at station {}: {} (record {})", key_set.id,
                 ToHex(reservation.ecu_uid), reservation.station, burn_reason, sequence);
  }
  core.state->PutRecordSequence(write.batch(), sequence);
  core.state->PutKeySet(write.batch(), std::move(key_set));
  return Status::Ok();
}

}  // namespace keyline::pks
