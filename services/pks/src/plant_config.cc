#include "plant_config.h"

#include <set>

#include "keyline/hsm/she.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"

namespace keyline::pks {

std::vector<uint8_t> ProductConfig::SlotNumbers() const {
  std::vector<uint8_t> numbers;
  for (const auto& slot : slots) numbers.push_back(slot.slot);
  return numbers;
}

namespace {

StatusOr<ProductConfig> ParseProduct(const wire::Product& product) {
  ProductConfig config;
  config.name = std::string(schemas::Text(product.name()));
  std::string where = "product \"" + config.name + "\"";
  if (config.name.empty()) return InvalidArgumentError("ConfigUpdate: a product has no name");
  config.oem = std::string(schemas::Text(product.oem()));
  if (product.flag_layout() != wire::SheFlagLayout::SHE_CLASSIC) {
    return InvalidArgumentError(
        where + ": flag layout " +
        std::string(product.flag_layout() == wire::SheFlagLayout::SHE_PLUS ? "SHE_PLUS"
                                                                           : "UNSPECIFIED") +
        " is not supported (this PKS encodes SHE_CLASSIC flags only)");
  }
  config.transport_key_ref = std::string(schemas::Text(product.transport_key_ref()));
  config.min_stock = product.min_stock();
  config.target_stock = product.target_stock();
  config.reservation_timeout_s = product.reservation_timeout_s();
  if (config.reservation_timeout_s == 0) {
    return InvalidArgumentError(where + ": reservation_timeout_s must be at least 1");
  }
  if (config.target_stock < config.min_stock) {
    return InvalidArgumentError(where + ": target_stock is below min_stock");
  }
  if (product.slots() == nullptr || product.slots()->size() == 0) {
    return InvalidArgumentError(where + ": has no slots");
  }
  std::set<uint8_t> loaded;
  for (const wire::SlotLayout* slot : *product.slots()) {
    SlotConfig s{slot->slot(), slot->auth_slot(), slot->counter(), slot->flags()};
    std::string slot_where = where + " slot " + std::to_string(s.slot);
    if (s.slot < hsm::kSheSlotMasterEcuKey || s.slot > hsm::kSheSlotKey1 + 9 ||
        s.slot == hsm::kSheSlotBootMac) {
      return InvalidArgumentError(slot_where + ": not a loadable SHE key slot");
    }
    if (loaded.count(s.slot) != 0) return InvalidArgumentError(slot_where + ": listed twice");
    if (s.counter > hsm::kSheMaxCounter) {
      return InvalidArgumentError(slot_where + ": counter exceeds 28 bits");
    }
    if (s.flags > hsm::kSheMaxFlags) {
      return InvalidArgumentError(slot_where + ": flags exceed the 5 SHE_CLASSIC bits");
    }
    // The authorising key must be one the PKS holds: a slot this key set loaded earlier, or
    // the product's transport key standing in for a blank ECU's MASTER_ECU_KEY.
    bool auth_known = loaded.count(s.auth_slot) != 0 ||
                      (s.auth_slot == hsm::kSheSlotMasterEcuKey && loaded.empty());
    if (!auth_known) {
      return InvalidArgumentError(slot_where + ": authorising slot " +
                                  std::to_string(s.auth_slot) +
                                  " is neither loaded earlier in this layout nor the "
                                  "MASTER_ECU_KEY of the first load");
    }
    if (s.auth_slot == hsm::kSheSlotMasterEcuKey && loaded.empty() &&
        config.transport_key_ref.empty()) {
      return InvalidArgumentError(where + ": needs a transport_key_ref for its first load");
    }
    loaded.insert(s.slot);
    config.slots.push_back(s);
  }
  if (const wire::CertificateSlot* slot = product.certificate()) {
    ASSIGN_OR_RETURN(config.certificate, schemas::ReadCertificateSlot(*slot, where));
    Status usages = hsm::CheckEndEntityUsages(config.certificate->key_usage,
                                              config.certificate->extended_key_usage);
    if (!usages.ok()) return InvalidArgumentError(where + ": " + usages.message());
  }
  return config;
}

}  // namespace

StatusOr<PlantConfig> ParsePlantConfig(const wire::ConfigUpdate& update,
                                       const std::string& plant_id) {
  std::string plant(schemas::Text(update.plant()));
  if (!plant_id.empty() && plant != plant_id) {
    return PermissionDeniedError("ConfigUpdate version " + std::to_string(update.version()) +
                                 " is for plant \"" + plant + "\", not \"" + plant_id + "\"");
  }
  if (update.version() == 0) return InvalidArgumentError("ConfigUpdate: version 0");
  PlantConfig config;
  config.version = update.version();
  if (update.products() != nullptr) {
    for (const wire::Product* product : *update.products()) {
      ASSIGN_OR_RETURN(ProductConfig parsed, ParseProduct(*product));
      std::string name = parsed.name;
      if (!config.products.emplace(name, std::move(parsed)).second) {
        return InvalidArgumentError("ConfigUpdate: product \"" + name + "\" listed twice");
      }
    }
  }
  if (update.stations() != nullptr) {
    for (const wire::Station* station : *update.stations()) {
      std::string id(schemas::Text(station->station_id()));
      if (id.empty()) return InvalidArgumentError("ConfigUpdate: a station has no id");
      RETURN_IF_ERROR(schemas::CheckFixedBytes(station->curve_public_key(),
                                               schemas::kCurvePublicKeyBytes,
                                               "station \"" + id + "\" curve_public_key"));
      broker::CurvePublicKey key{};
      std::copy_n(station->curve_public_key()->data(), key.size(), key.begin());
      config.stations[id] = key;
    }
  }
  if (update.sync() != nullptr && update.sync()->mode() != wire::SyncMode::UNSPECIFIED) {
    config.has_sync_policy = true;
    config.sync_continuous = update.sync()->mode() == wire::SyncMode::CONTINUOUS;
    if (update.sync()->mode() == wire::SyncMode::INTERVAL) {
      if (update.sync()->interval_s() == 0) {
        return InvalidArgumentError("ConfigUpdate: sync interval_s must be at least 1");
      }
      config.sync_interval_s = static_cast<int>(update.sync()->interval_s());
    } else if (update.sync()->mode() != wire::SyncMode::CONTINUOUS) {
      return InvalidArgumentError("ConfigUpdate: unknown sync mode " +
                                  std::to_string(static_cast<int>(update.sync()->mode())));
    }
  }
  if (update.issuing_cas() != nullptr) {
    for (const wire::IssuingCa* ca : *update.issuing_cas()) {
      IssuingCaConfig parsed{std::string(schemas::Text(ca->oem())), std::string(schemas::Text(ca->key_name())),
                             std::string(schemas::Text(ca->certificate())),
                             std::string(schemas::Text(ca->oem_ca_certificate())), ca->budget_min(),
                             ca->budget_target()};
      if (parsed.oem.empty() || !parsed.key_name.starts_with("plant-ca/") || parsed.certificate.empty() ||
          parsed.oem_ca_certificate.empty()) {
        return InvalidArgumentError("ConfigUpdate: issuing CA \"" + parsed.key_name + "\" of OEM \"" +
                                    parsed.oem + "\" lacks its OEM, a plant-ca/ key name or a certificate");
      }
      if (parsed.budget_target < parsed.budget_min) {
        return InvalidArgumentError("ConfigUpdate: issuing CA \"" + parsed.key_name + "\": budget_target " +
                                    std::to_string(parsed.budget_target) + " is below budget_min " +
                                    std::to_string(parsed.budget_min));
      }
      std::string oem = parsed.oem;
      if (!config.issuing_cas.emplace(oem, std::move(parsed)).second) {
        return InvalidArgumentError("ConfigUpdate: two issuing CAs for OEM \"" + oem + "\"");
      }
    }
  }
  return config;
}

StatusOr<PlantConfig> ParsePlantConfig(std::span<const uint8_t> bytes,
                                       const std::string& plant_id) {
  ASSIGN_OR_RETURN(const wire::ConfigUpdate* update,
                   schemas::DecodeMessage<wire::ConfigUpdate>(bytes));
  return ParsePlantConfig(*update, plant_id);
}

}  // namespace keyline::pks
