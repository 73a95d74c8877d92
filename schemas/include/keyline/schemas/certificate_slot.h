// A product's ECU certificate slot (kms_pks.fbs CertificateSlot) in C++ form, read and written
// the same way by the KMS (ProductAdd, ConfigUpdate), the PKS (its configuration, stored
// reservations) and the tools. Which usage names an issuer accepts is the issuer's check
// (hsm::CheckEndEntityUsages); everything else about the slot is checked here.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "keyline/common/status.h"

namespace keyline::wire {
struct CertificateSlot;
}  // namespace keyline::wire

namespace keyline::schemas {

inline constexpr uint32_t kMaxCertificateValidityDays = 36500;

struct CertificateSlotSpec {
  std::string name;                // 1..64 of A-Z a-z 0-9 . _ -
  std::string organization;        // O; may be empty
  std::string organizational_unit; // OU; may be empty
  std::string common_name;         // CN template: {uid} {product} {oem} are replaced
  uint32_t validity_days = 0;      // 1..kMaxCertificateValidityDays
  std::vector<std::string> key_usage;
  std::vector<std::string> extended_key_usage;

  friend bool operator==(const CertificateSlotSpec&, const CertificateSlotSpec&) = default;

  // The CN for one ECU: the template with {uid} (lower-case hex), {product} and {oem} replaced.
  std::string CommonNameFor(std::span<const uint8_t> ecu_uid, const std::string& product,
                            const std::string& oem) const;
};

// OK when `name` is 1..64 of A-Z a-z 0-9 . _ - (it names the slot in ECUs, records and files).
[[nodiscard]] Status CheckCertificateSlotName(std::string_view name);

// Reads a verified CertificateSlot. InvalidArgument (prefixed with `where`) for a missing or
// bad name, a key type other than ECDSA_P256, a validity outside 1..36500 days, or an empty
// usage name.
[[nodiscard]] StatusOr<CertificateSlotSpec> ReadCertificateSlot(const wire::CertificateSlot& slot,
                                                                const std::string& where);

flatbuffers::Offset<wire::CertificateSlot> CreateCertificateSlot(flatbuffers::FlatBufferBuilder& fbb,
                                                                 const CertificateSlotSpec& spec);

}  // namespace keyline::schemas
