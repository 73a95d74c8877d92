// A stand-in for a plant's PKS in KMS tests: a real MessageStore and LinkClient to the KMS,
// its own custody with the `pks-transfer` and `pks-signing` keys, and signed InjectionRecords
// whose M4/M5 are real proofs computed from the shipped keys (docs/key-flow.md).
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "keyline/broker/curve_keys.h"
#include "keyline/broker/database.h"
#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "keyline/hsm/key_custody.h"

namespace keyline::kms::testing {

struct ShippedKeySet {
  std::string key_set_id;
  std::string product;
  std::string shipment_id;
  std::vector<uint8_t> wrapped;
  std::vector<uint8_t> slots;
};

// A CertificateBudgetGrant as the plant received it.
struct BudgetGrant {
  std::string request_id, grant_id, plant, oem;
  uint32_t count = 0;
};

struct SlotLoad {
  uint8_t slot;
  uint8_t auth_slot;
  uint32_t counter;
  uint8_t flags;
};

class PlantSim {
 public:
  PlantSim(std::filesystem::path dir, std::string plant);
  ~PlantSim();

  const std::string& plant() const { return plant_; }
  broker::CurveKeyPair& curve() { return curve_; }
  hsm::PublicKey wrap_public() const { return wrap_public_; }
  hsm::PublicKey signing_public() const { return signing_public_; }

  // Dials the KMS's link endpoint.
  void Connect(const std::string& endpoint, const broker::CurvePublicKey& kms_key);
  void Disconnect();

  void RequestStock(const std::string& request_id, const std::string& product, uint32_t count);
  void Send(const std::string& stream, uint16_t type, const std::vector<uint8_t>& payload);

  // A signed InjectionRecord for `set`, INJECTED with real proofs for `uid`, or BURNED; with a
  // certificate slot "identity" holding `certificate` when it is not empty.
  std::vector<uint8_t> MakeRecord(uint64_t sequence, const ShippedKeySet& set, const std::vector<SlotLoad>& layout,
                                  const std::array<uint8_t, 15>& uid, bool injected,
                                  hsm::KeyHandle* signer_override = nullptr, const std::string& certificate = "");
  hsm::KeyCustody& custody() { return *custody_; }

  std::vector<ShippedKeySet> Shipped();
  size_t shipments();
  std::vector<uint64_t> ConfigVersions();
  std::vector<std::string> VerificationRequests();
  // Every PlantCaRequest received (payloads), and the issuing CA key names of each ConfigUpdate.
  std::vector<std::vector<uint8_t>> PlantCaRequests();
  std::vector<std::vector<std::string>> ConfigIssuingCas();
  // The (budget_min, budget_target) of the first issuing CA of each ConfigUpdate ({0, 0}: none).
  std::vector<std::pair<uint32_t, uint32_t>> ConfigBudgets();
  std::vector<BudgetGrant> BudgetGrants();

 private:
  std::filesystem::path dir_;
  std::string plant_;
  broker::CurveKeyPair curve_;
  std::unique_ptr<hsm::KeyCustody> custody_;
  hsm::KeyHandle transfer_;
  hsm::KeyHandle signing_;
  hsm::PublicKey wrap_public_;
  hsm::PublicKey signing_public_;
  std::unique_ptr<broker::Database> database_;
  std::unique_ptr<broker::MessageStore> store_;
  std::unique_ptr<broker::LinkClient> client_;
  std::mutex mu_;
  std::vector<ShippedKeySet> shipped_;
  size_t shipments_ = 0;
  std::vector<uint64_t> config_versions_;
  std::vector<std::string> verification_requests_;
  std::vector<std::vector<uint8_t>> plant_ca_requests_;
  std::vector<std::vector<std::string>> config_issuing_cas_;
  std::vector<std::pair<uint32_t, uint32_t>> config_budgets_;
  std::vector<BudgetGrant> budget_grants_;
};

}  // namespace keyline::kms::testing
