// Catalog: OEMs, products, plants (with their stations and sync policy). Kept in memory for the
// link handlers and persisted in the "catalog" column family. Every change that concerns plants
// queues a versioned ConfigUpdate to each of them in the same write (transactional outbox).
//
// Threads: changes come from the admin thread one at a time; lookups from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "audit_log.h"
#include "keyline/broker/curve_keys.h"
#include "keyline/schemas/certificate_slot.h"
#include "kms_context.h"

namespace keyline::wire {
struct Product;
}  // namespace keyline::wire

namespace keyline::kms {

struct SlotSpec {
  uint8_t slot = 0;
  uint8_t auth_slot = 0;
  uint32_t counter = 0;
  uint8_t flags = 0;
};

struct ProductSpec {
  std::string name;
  std::string oem;
  std::vector<SlotSpec> slots;  // load order
  uint8_t flag_layout = 0;      // wire::SheFlagLayout
  std::string transport_key_ref;
  uint32_t min_stock = 0;
  uint32_t target_stock = 0;
  uint32_t reservation_timeout_s = 0;
  // Set when the product's ECUs also get a key pair and a certificate (docs/certificates.md).
  std::optional<schemas::CertificateSlotSpec> certificate;
};

struct StationSpec {
  std::string station_id;
  broker::CurvePublicKey curve_key{};
};

struct PlantSpec {
  std::string plant;
  broker::CurvePublicKey curve_key{};
  hsm::PublicKey wrap_key{hsm::KeyKind::kX25519, {}};
  hsm::PublicKey signing_key{hsm::KeyKind::kEd25519, {}};
  uint64_t config_version = 0;
  std::vector<StationSpec> stations;
  uint8_t sync_mode = 1;  // wire::SyncMode, CONTINUOUS until set
  uint32_t sync_interval_s = 0;
};

// A plant issuing CA as its ConfigUpdate lists it (wire::IssuingCa).
struct IssuingCaConfig {
  std::string oem;
  std::string key_name;
  std::string certificate;         // PEM
  std::string oem_ca_certificate;  // PEM
  uint32_t budget_min = 0;         // the plant's issuing budget policy (CertificateBudgets)
  uint32_t budget_target = 0;
};

// The ACTIVE issuing CAs of a plant (PlantCas::ActiveFor).
using IssuingCaSource = std::function<std::vector<IssuingCaConfig>(const std::string& plant)>;

struct OemSpec {
  std::string name;
  hsm::PublicKey signing_key{hsm::KeyKind::kEd25519, {}};
};

class Catalog {
 public:
  Catalog(KmsContext* context, AuditLog* audit) : context_(context), audit_(audit) {}

  // Where ConfigUpdates take the plant's issuing CAs from. Set once, before any change.
  void SetIssuingCaSource(IssuingCaSource source) { issuing_cas_ = std::move(source); }

  [[nodiscard]] Status Load();

  // Admin changes. Each validates first (an error changes nothing), then commits the record,
  // the ConfigUpdates it causes and its audit entry in one synced write. Re-adding exactly what
  // exists is OK and changes nothing; anything else already there is ALREADY_EXISTS.
  [[nodiscard]] Status AddOem(const OemSpec& oem, const std::string& actor);
  [[nodiscard]] Status AddProduct(const ProductSpec& product, const std::string& actor);
  [[nodiscard]] Status AddPlant(const PlantSpec& plant, const std::string& actor);
  [[nodiscard]] Status AddStation(const std::string& plant, const StationSpec& station,
                                  const std::string& actor);
  [[nodiscard]] Status SetSyncPolicy(const std::string& plant, uint8_t mode, uint32_t interval_s,
                                     const std::string& actor);

  // Queues a new ConfigUpdate for `plant` in `write` (another module's change that the plant's
  // configuration shows, such as an issuing CA). Call from the admin thread's Work only.
  [[nodiscard]] Status QueuePlantConfig(const std::string& plant, broker::WriteContext& write);

  std::optional<OemSpec> Oem(const std::string& name) const;
  std::optional<ProductSpec> Product(const std::string& name) const;
  std::optional<PlantSpec> Plant(const std::string& plant) const;
  std::vector<ProductSpec> Products() const;
  std::vector<PlantSpec> Plants() const;

  // The ConfigUpdate payload for `plant` at `plant.config_version` (caller holds no lock).
  std::vector<uint8_t> BuildConfigUpdate(const PlantSpec& plant,
                                         const std::vector<ProductSpec>& products) const;

 private:
  // Puts `plant` (with its version raised by one) and queues its ConfigUpdate.
  Status QueueConfig(broker::WriteContext& write, PlantSpec& plant,
                     const std::vector<ProductSpec>& products);
  void PutPlant(broker::WriteContext& write, const PlantSpec& plant);
  // Copies of `plant_id`'s spec and of every product: what a change queuing its ConfigUpdate
  // works on outside the lock. NotFound for an unknown plant.
  [[nodiscard]] Status CopyPlantAndProducts(const std::string& plant_id, PlantSpec& plant,
                                            std::vector<ProductSpec>& products) const;
  bool CurveKeyInUse(const broker::CurvePublicKey& key) const;  // caller holds mu_

  KmsContext* context_;
  AuditLog* audit_;
  IssuingCaSource issuing_cas_;
  mutable std::shared_mutex mu_;
  std::map<std::string, OemSpec> oems_;
  std::map<std::string, ProductSpec> products_;
  std::map<std::string, PlantSpec> plants_;
};

// Checks a product's fields (slot ranges, flags for its layout, quotas); errors name the field.
[[nodiscard]] Status ValidateProduct(const ProductSpec& product);

// A verified wire Product in C++ form (an admin's ProductAdd, a stored product). Refuses a
// certificate slot that does not read (schemas::ReadCertificateSlot); the rest is checked by
// ValidateProduct.
[[nodiscard]] StatusOr<ProductSpec> ReadProduct(const wire::Product& product);

}  // namespace keyline::kms
