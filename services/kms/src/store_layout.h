// The KMS's RocksDB layout: column families and their keys. Internal to services/kms.
//
//   catalog   "oem/<name>"                 -> KmsOem
//             "product/<name>"             -> Product (kms_pks.fbs)
//             "plant/<id>"                 -> KmsPlant (with its stations and sync policy)
//             "oem-ca/<oem>"               -> KmsOemCa (plant_cas.h)
//             "plant-ca/<plant>/<oem>/<generation, 10 digits>" -> KmsPlantCa
//             "cert-budget/<plant>/<oem>"  -> KmsCertificateBudget (certificate_budgets.h)
//             "cert-budget-answer/<plant>/<request_id>" -> "<oem>\n<grant id>\n<count>"
//   keysets   "<key_set_id>"               -> KmsKeySet
//   stock     "<product> 0x00 order(8)"    -> key_set_id        (IMPORTED, not yet shipped)
//   shipped   "<plant> 0x00 <product> 0x00 <state> 0x00 <key_set_id>" -> ""
//                                          (state 'S' shipped, 'I' injected, 'B' burned)
//   batches   "<batch_id>"                 -> KmsBatch
//   records   "r/<plant> 0x00 seq(8)"      -> InjectionRecord as received (applied once)
//             "i/<oem> 0x00 <plant> 0x00 seq(8)" -> "" (injected: what a verification exports)
//             "q/<plant> 0x00 <request_id>" -> shipment id (StockRequest answered)
//   verify    "<verification_id>"          -> KmsVerification
//   audit     "e" seq(8)                   -> AuditEntry
//   meta      "next_import_order", "next_shipment", "next_verification" -> u64(8)
//             "audit_head"                 -> seq(8) hash(32)
//             "plant_status/<plant>"       -> PlantStatus as last received
//             "alert/<product>"            -> text of the open short-stock alert
//
// Big-endian numbers make RocksDB's byte order the numeric order (oldest import first).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace keyline::kms::layout {

inline constexpr char kCatalog[] = "catalog";
inline constexpr char kKeySets[] = "keysets";
inline constexpr char kStock[] = "stock";
inline constexpr char kShipped[] = "shipped";
inline constexpr char kBatches[] = "batches";
inline constexpr char kRecords[] = "records";
inline constexpr char kVerify[] = "verify";
inline constexpr char kAudit[] = "audit";
inline constexpr char kMeta[] = "meta";

inline void AppendU64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

inline uint64_t ReadU64(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8 && i < bytes.size(); ++i) {
    value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  }
  return value;
}

inline std::string U64(uint64_t value) {
  std::string out;
  AppendU64(out, value);
  return out;
}

inline std::string StockPrefix(std::string_view product) {
  std::string key(product);
  key.push_back('\0');
  return key;
}

inline std::string StockKey(std::string_view product, uint64_t import_order) {
  std::string key = StockPrefix(product);
  AppendU64(key, import_order);
  return key;
}

inline std::string ShippedKey(std::string_view plant, std::string_view product, char state,
                              std::string_view key_set_id) {
  std::string key(plant);
  key.push_back('\0');
  key += product;
  key.push_back('\0');
  key.push_back(state);
  key.push_back('\0');
  key += key_set_id;
  return key;
}

inline std::string RecordKey(std::string_view plant, uint64_t sequence) {
  std::string key = "r/";
  key += plant;
  key.push_back('\0');
  AppendU64(key, sequence);
  return key;
}

inline std::string InjectedPrefix(std::string_view oem) {
  std::string key = "i/";
  key += oem;
  key.push_back('\0');
  return key;
}

inline std::string InjectedKey(std::string_view oem, std::string_view plant, uint64_t sequence) {
  std::string key = InjectedPrefix(oem);
  key += plant;
  key.push_back('\0');
  AppendU64(key, sequence);
  return key;
}

inline std::string RequestKey(std::string_view plant, std::string_view request_id) {
  std::string key = "q/";
  key += plant;
  key.push_back('\0');
  key += request_id;
  return key;
}

inline std::string AuditKey(uint64_t sequence) {
  std::string key = "e";
  AppendU64(key, sequence);
  return key;
}

}  // namespace keyline::kms::layout
