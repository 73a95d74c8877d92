// RecordOutcome: the one place a reserved key set becomes INJECTED or BURNED.
#include <flatbuffers/flatbuffers.h>

#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/schemas/build.h"
#include "keyline/wire/records_generated.h"
#include "plant_core.h"

namespace keyline::pks {

Status RecordOutcome(PlantCore& core, broker::WriteContext& write, KeySet key_set,
                     const std::vector<SlotVerdict>& verdicts, std::string burn_reason) {
  bool injected = burn_reason.empty() && !verdicts.empty();
  for (const SlotVerdict& verdict : verdicts) {
    if (!verdict.proven) {
      injected = false;
      if (burn_reason.empty()) burn_reason = verdict.problem;
    }
  }
  if (!injected && burn_reason.empty()) burn_reason = "no slot was proven";
  const Reservation& reservation = *key_set.reservation;
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
  auto body = wire::CreateInjectionRecordBody(
      fbb, sequence, fbb.CreateString(core.plant_id), fbb.CreateString(reservation.station),
      fbb.CreateString(key_set.product), fbb.CreateString(key_set.id),
      schemas::CreateBytes(fbb, reservation.ecu_uid),
      injected ? wire::RecordOutcome::INJECTED : wire::RecordOutcome::BURNED,
      fbb.CreateString(injected ? std::string() : burn_reason), now, fbb.CreateVector(slots));
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
