#include "slot_loader.h"

#include <algorithm>

#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "keyline/hsm/she.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/pks_injector_generated.h"

namespace keyline::injector {
namespace {

template <size_t N>
std::array<uint8_t, N> ToArray(const flatbuffers::Vector<uint8_t>* field) {
  std::array<uint8_t, N> out{};
  std::copy_n(field->data(), N, out.begin());
  return out;
}

bool Silent(EcuError error) { return error == EcuError::kTimeout || error == EcuError::kNoAnswer; }

// Whether the proof matches the digest the PKS sent; no digest (an older PKS): the PKS alone
// judges, so the proof is taken as it came.
bool ProofMatches(const wire::PackageSlot& slot, const EcuLoadResult& answer) {
  if (!schemas::CheckFixedBytes(slot.proof_digest(), schemas::kProofDigestBytes, "").ok()) {
    return true;
  }
  hsm::SheProof proof{answer.m4, answer.m5};
  hsm::SheProofDigest digest = hsm::DigestSheProof(proof);
  return std::equal(digest.begin(), digest.end(), slot.proof_digest()->data());
}

LoadedSlot LoadSlot(EcuLink& ecu, const EcuUid& uid, const wire::PackageSlot& slot,
                    const LoadPolicy& policy) {
  LoadedSlot loaded;
  loaded.outcome.slot = slot.slot();
  auto m1 = ToArray<16>(slot.m1());
  auto m2 = ToArray<32>(slot.m2());
  auto m3 = ToArray<16>(slot.m3());
  bool answer_lost = false;
  for (int attempt = 1; attempt <= policy.attempts; ++attempt) {
    loaded.outcome.attempts = static_cast<uint16_t>(attempt);
    StatusOr<EcuLoadResult> answer = ecu.LoadKey(uid, m1, m2, m3, policy.answer_timeout);
    if (!answer.ok()) {
      // The link could not even form the exchange: nothing more to try on this slot.
      spdlog::error("ECU {} slot {}: {}", ToHex(uid), slot.slot(), answer.status().ToString());
      loaded.outcome.error = EcuError::kGeneralError;
      return loaded;
    }
    loaded.outcome.error = answer->error;
    spdlog::info("ECU {} slot {} attempt {}: {}{}{}", ToHex(uid), slot.slot(), attempt,
                 EcuErrorName(answer->error), answer->detail.empty() ? "" : " ",
                 answer->detail);
    if (answer->error == EcuError::kNone) {
      loaded.m4 = answer->m4;
      loaded.m5 = answer->m5;
      if (!ProofMatches(slot, *answer)) loaded.outcome.error = EcuError::kWrongProof;
      return loaded;
    }
    // A resend after a lost answer that the ECU refuses means the first load landed: the
    // counter is no longer larger, or, for a slot that authorises itself (MASTER_ECU_KEY), M3
    // no longer verifies under the key it replaced.
    bool landed = answer->error == EcuError::kCounterNotLarger ||
                  (answer->error == EcuError::kKeyUpdateError && slot.slot() == slot.auth_slot());
    if (answer_lost && landed) {
      spdlog::warn("ECU {} slot {}: an earlier unanswered load landed; its proof is lost",
                   ToHex(uid), slot.slot());
      return loaded;
    }
    if (!Silent(answer->error)) return loaded;
    answer_lost = true;
  }
  return loaded;
}

}  // namespace

std::vector<LoadedSlot> LoadPackage(EcuLink& ecu, const EcuUid& uid,
                                    const wire::KeyPackage& package, const LoadPolicy& policy) {
  std::vector<LoadedSlot> slots;
  bool failed = false;
  for (const wire::PackageSlot* slot : *package.slots()) {
    if (failed) {
      LoadedSlot skipped;
      skipped.outcome = SlotOutcome{slot->slot(), EcuError::kNotAttempted, 0};
      slots.push_back(skipped);
      continue;
    }
    slots.push_back(LoadSlot(ecu, uid, *slot, policy));
    failed = slots.back().outcome.error != EcuError::kNone;
  }
  return slots;
}

}  // namespace keyline::injector
