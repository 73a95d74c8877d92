// Loads one KeyPackage into one ECU, slot by slot in the package's order, and judges each
// answer against the proof digest the PKS sent (the injector's own check; the PKS checks the
// proof again). What the ECU said goes into the InjectionResult whatever it was.
#pragma once

#include <array>
#include <chrono>
#include <optional>
#include <vector>

#include "keyline/injector/ecu_link.h"
#include "keyline/injector/provision_outcome.h"

namespace keyline::wire {
struct KeyPackage;
}  // namespace keyline::wire

namespace keyline::injector {

struct LoadPolicy {
  std::chrono::milliseconds answer_timeout{2000};  // one CMD_LOAD_KEY
  int attempts = 3;  // sends of the same M1..M3 while the ECU stays silent
};

// One slot as loaded: the outcome for the tester and the proof for the InjectionResult.
struct LoadedSlot {
  SlotOutcome outcome;
  std::optional<std::array<uint8_t, 32>> m4;  // present when the ECU answered with a proof
  std::optional<std::array<uint8_t, 16>> m5;
};

// Loads every slot of `package` (verified, without error) into the ECU `uid`. After the first
// slot that fails, the rest are NOT_ATTEMPTED: each later load is authorised by a key that may
// not be there. Retries: a silent ECU (TIMEOUT, NO_ANSWER) gets the same M1..M3 again, up to
// policy.attempts; COUNTER_NOT_LARGER after a silence (KEY_UPDATE_ERROR for a self-authorised
// slot) means the lost load landed (SHE.md field notes) but its proof is gone, so the slot
// fails with that code and the PKS burns the set.
std::vector<LoadedSlot> LoadPackage(EcuLink& ecu, const EcuUid& uid,
                                    const wire::KeyPackage& package, const LoadPolicy& policy);

}  // namespace keyline::injector
