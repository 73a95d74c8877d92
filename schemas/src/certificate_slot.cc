#include "keyline/schemas/certificate_slot.h"

#include <algorithm>
#include <cctype>

#include "keyline/common/hex.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/kms_pks_generated.h"

namespace keyline::schemas {
namespace {

void ReplaceAll(std::string& text, std::string_view token, const std::string& value) {
  for (size_t pos = text.find(token); pos != std::string::npos;
       pos = text.find(token, pos + value.size())) {
    text.replace(pos, token.size(), value);
  }
}

std::vector<std::string> ReadNames(
    const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* names) {
  std::vector<std::string> out;
  if (names == nullptr) return out;
  for (const flatbuffers::String* name : *names) out.emplace_back(Text(name));
  return out;
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> CreateNames(
    flatbuffers::FlatBufferBuilder& fbb, const std::vector<std::string>& names) {
  if (names.empty()) return 0;
  return fbb.CreateVectorOfStrings(names);
}

}  // namespace

std::string CertificateSlotSpec::CommonNameFor(std::span<const uint8_t> ecu_uid,
                                               const std::string& product,
                                               const std::string& oem) const {
  std::string cn = common_name;
  ReplaceAll(cn, "{uid}", ToHex(ecu_uid));
  ReplaceAll(cn, "{product}", product);
  ReplaceAll(cn, "{oem}", oem);
  return cn;
}

Status CheckCertificateSlotName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 &&
            std::all_of(name.begin(), name.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
            });
  if (!ok) {
    return InvalidArgumentError("certificate slot name \"" + std::string(name) +
                                "\": expected 1..64 of A-Z a-z 0-9 . _ -");
  }
  return Status::Ok();
}

StatusOr<CertificateSlotSpec> ReadCertificateSlot(const wire::CertificateSlot& slot,
                                                  const std::string& where) {
  CertificateSlotSpec spec;
  spec.name = std::string(Text(slot.name()));
  if (Status named = CheckCertificateSlotName(spec.name); !named.ok()) {
    return InvalidArgumentError(where + ": " + named.message());
  }
  if (slot.key_type() != wire::CertificateKeyType::ECDSA_P256) {
    return InvalidArgumentError(where + ": certificate slot " + spec.name + ": key type " +
                                std::to_string(static_cast<int>(slot.key_type())) +
                                " is not ECDSA_P256");
  }
  spec.organization = std::string(Text(slot.organization()));
  spec.organizational_unit = std::string(Text(slot.organizational_unit()));
  spec.common_name = std::string(Text(slot.common_name()));
  spec.validity_days = slot.validity_days();
  if (spec.validity_days < 1 || spec.validity_days > kMaxCertificateValidityDays) {
    return InvalidArgumentError(where + ": certificate slot " + spec.name + ": validity_days " +
                                std::to_string(spec.validity_days) + " is not within 1.." +
                                std::to_string(kMaxCertificateValidityDays));
  }
  spec.key_usage = ReadNames(slot.key_usage());
  spec.extended_key_usage = ReadNames(slot.extended_key_usage());
  for (const auto* names : {&spec.key_usage, &spec.extended_key_usage}) {
    if (std::any_of(names->begin(), names->end(), [](const std::string& n) { return n.empty(); })) {
      return InvalidArgumentError(where + ": certificate slot " + spec.name + ": an empty usage name");
    }
  }
  return spec;
}

flatbuffers::Offset<wire::CertificateSlot> CreateCertificateSlot(flatbuffers::FlatBufferBuilder& fbb,
                                                                 const CertificateSlotSpec& spec) {
  auto name = fbb.CreateString(spec.name);
  auto organization = fbb.CreateString(spec.organization);
  auto unit = fbb.CreateString(spec.organizational_unit);
  auto common_name = fbb.CreateString(spec.common_name);
  auto key_usage = CreateNames(fbb, spec.key_usage);
  auto extended = CreateNames(fbb, spec.extended_key_usage);
  return wire::CreateCertificateSlot(fbb, name, wire::CertificateKeyType::ECDSA_P256, organization,
                                     unit, common_name, spec.validity_days, key_usage, extended);
}

}  // namespace keyline::schemas
