// The plant's configuration as the KMS last sent it (ConfigUpdate), checked and in C++ form.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "keyline/broker/curve_keys.h"
#include "keyline/common/status.h"
#include "keyline/schemas/certificate_slot.h"

namespace keyline::wire {
struct ConfigUpdate;
}  // namespace keyline::wire

namespace keyline::pks {

struct SlotConfig {
  uint8_t slot = 0;
  uint8_t auth_slot = 0;
  uint32_t counter = 0;
  uint8_t flags = 0;
};

struct ProductConfig {
  std::string name;
  std::string oem;
  std::vector<SlotConfig> slots;  // load order
  std::string transport_key_ref;
  uint32_t min_stock = 0;
  uint32_t target_stock = 0;
  uint32_t reservation_timeout_s = 0;
  // Set when the product's ECUs also get a key pair and a certificate (docs/certificates.md).
  std::optional<schemas::CertificateSlotSpec> certificate;
  // The slots as a byte string, to compare with a key set's slot list.
  std::vector<uint8_t> SlotNumbers() const;
};

// One of the plant's issuing CAs (docs/certificates.md): a P-256 key in this plant's HSM and
// the certificate the OEM's CA signed for it.
struct IssuingCaConfig {
  std::string oem;
  std::string key_name;            // "plant-ca/<oem>/<generation>"
  std::string certificate;         // PEM
  std::string oem_ca_certificate;  // PEM: the root ECU certificates chain to
  // Issuing budget policy: ask the KMS when fewer than budget_min remain, up to budget_target.
  uint32_t budget_min = 0;
  uint32_t budget_target = 0;
};

struct PlantConfig {
  uint64_t version = 0;  // 0: nothing received yet
  std::map<std::string, ProductConfig> products;
  std::map<std::string, broker::CurvePublicKey> stations;
  bool has_sync_policy = false;  // the update carried one (else keep the current policy)
  bool sync_continuous = true;
  int sync_interval_s = 60;
  std::map<std::string, IssuingCaConfig> issuing_cas;  // by OEM; an OEM not here: no certificates
};

// Checks a verified ConfigUpdate for `plant_id` and converts it (an empty `plant_id` takes
// the update's own plant: for reading a data dir whose plant is not known beforehand). Refuses (InvalidArgument,
// naming the product or station) what a PKS could not serve: another plant's configuration,
// a slot layout whose authorising keys are unknown, a flag layout this HSM adapter cannot
// encode, a counter beyond 28 bits, a station key that is not 32 bytes.
[[nodiscard]] StatusOr<PlantConfig> ParsePlantConfig(const wire::ConfigUpdate& update,
                                                     const std::string& plant_id);

// The same from the stored bytes (verified first).
[[nodiscard]] StatusOr<PlantConfig> ParsePlantConfig(std::span<const uint8_t> bytes,
                                                     const std::string& plant_id);

}  // namespace keyline::pks
