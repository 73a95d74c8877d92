#include "catalog.h"

#include <memory>
#include <mutex>
#include <set>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "keyline/broker/queue_id.h"
#include "keyline/common/hex.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/kms_store_generated.h"
#include "store_layout.h"

namespace keyline::kms {
namespace {

template <size_t N>
std::array<uint8_t, N> ToArray(std::span<const uint8_t> bytes) {
  std::array<uint8_t, N> out{};
  if (bytes.size() == N) std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

flatbuffers::Offset<wire::Product> CreateProduct(flatbuffers::FlatBufferBuilder& fbb,
                                                 const ProductSpec& p) {
  std::vector<flatbuffers::Offset<wire::SlotLayout>> slots;
  for (const SlotSpec& s : p.slots) {
    slots.push_back(wire::CreateSlotLayout(fbb, s.slot, s.auth_slot, s.counter, s.flags));
  }
  auto certificate = p.certificate ? schemas::CreateCertificateSlot(fbb, *p.certificate) : 0;
  return wire::CreateProduct(fbb, fbb.CreateString(p.name), fbb.CreateString(p.oem),
                             fbb.CreateVector(slots), static_cast<wire::SheFlagLayout>(p.flag_layout),
                             fbb.CreateString(p.transport_key_ref), p.min_stock, p.target_stock,
                             p.reservation_timeout_s, certificate);
}

bool SameProduct(const ProductSpec& a, const ProductSpec& b) {
  if (a.slots.size() != b.slots.size()) return false;
  for (size_t i = 0; i < a.slots.size(); ++i) {
    const SlotSpec& x = a.slots[i];
    const SlotSpec& y = b.slots[i];
    if (x.slot != y.slot || x.auth_slot != y.auth_slot || x.counter != y.counter || x.flags != y.flags) {
      return false;
    }
  }
  return a.name == b.name && a.oem == b.oem && a.flag_layout == b.flag_layout &&
         a.transport_key_ref == b.transport_key_ref && a.min_stock == b.min_stock &&
         a.target_stock == b.target_stock && a.reservation_timeout_s == b.reservation_timeout_s &&
         a.certificate == b.certificate;
}

std::string Quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

}  // namespace

StatusOr<ProductSpec> ReadProduct(const wire::Product& p) {
  ProductSpec spec;
  spec.name = std::string(schemas::Text(p.name()));
  spec.oem = std::string(schemas::Text(p.oem()));
  if (p.slots() != nullptr) {
    for (const auto* s : *p.slots()) {
      if (s != nullptr) spec.slots.push_back({s->slot(), s->auth_slot(), s->counter(), s->flags()});
    }
  }
  spec.flag_layout = static_cast<uint8_t>(p.flag_layout());
  spec.transport_key_ref = std::string(schemas::Text(p.transport_key_ref()));
  spec.min_stock = p.min_stock();
  spec.target_stock = p.target_stock();
  spec.reservation_timeout_s = p.reservation_timeout_s();
  if (p.certificate() != nullptr) {
    ASSIGN_OR_RETURN(spec.certificate, schemas::ReadCertificateSlot(*p.certificate(), "product " + spec.name));
  }
  return spec;
}

Status ValidateProduct(const ProductSpec& p) {
  RETURN_IF_ERROR(broker::ValidateName("product name", p.name));
  RETURN_IF_ERROR(broker::ValidateName("product OEM", p.oem));
  if (p.slots.empty()) return InvalidArgumentError("product " + p.name + ": no slots given");
  if (p.slots.size() > 14) {
    return InvalidArgumentError("product " + p.name + ": at most 14 slots, got " +
                                std::to_string(p.slots.size()));
  }
  if (p.flag_layout != static_cast<uint8_t>(wire::SheFlagLayout::SHE_CLASSIC) &&
      p.flag_layout != static_cast<uint8_t>(wire::SheFlagLayout::SHE_PLUS)) {
    return InvalidArgumentError("product " + p.name + ": flag layout must be classic or plus");
  }
  const uint8_t max_flags =
      p.flag_layout == static_cast<uint8_t>(wire::SheFlagLayout::SHE_PLUS) ? 0x3F : 0x1F;
  std::set<uint8_t> seen;
  for (const SlotSpec& s : p.slots) {
    const std::string where = "product " + p.name + " slot " + std::to_string(s.slot);
    if (s.slot < 1 || s.slot > 0xE) return OutOfRangeError(where + ": slot must be 1..14");
    if (s.auth_slot > 0xF) return OutOfRangeError(where + ": auth slot must be 0..15");
    if (s.counter > 0x0FFFFFFF) return OutOfRangeError(where + ": counter must be below 2^28");
    if (s.flags > max_flags) {
      return OutOfRangeError(where + ": flags " + std::to_string(s.flags) +
                             " do not fit the flag layout (max " + std::to_string(max_flags) + ")");
    }
    if (!seen.insert(s.slot).second) return InvalidArgumentError(where + ": slot given twice");
  }
  if (p.transport_key_ref.empty()) {
    return InvalidArgumentError("product " + p.name + ": transport key reference is missing");
  }
  if (p.target_stock == 0) return InvalidArgumentError("product " + p.name + ": target stock must be above 0");
  if (p.min_stock > p.target_stock) {
    return InvalidArgumentError("product " + p.name + ": minimum stock " + std::to_string(p.min_stock) +
                                " is above the target " + std::to_string(p.target_stock));
  }
  if (p.reservation_timeout_s == 0) {
    return InvalidArgumentError("product " + p.name + ": reservation time-out must be above 0");
  }
  if (p.certificate) {
    Status usages = hsm::CheckEndEntityUsages(p.certificate->key_usage, p.certificate->extended_key_usage);
    if (!usages.ok()) return InvalidArgumentError("product " + p.name + ": " + usages.message());
  }
  return Status::Ok();
}

Status Catalog::Load() {
  std::unique_lock lock(mu_);
  std::unique_ptr<rocksdb::Iterator> it(context_->database->db()->NewIterator(
      rocksdb::ReadOptions(), context_->Family(layout::kCatalog)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string key = it->key().ToString();
    const std::string copy = it->value().ToString();  // aligned for FlatBuffers; blocks are not
    std::span<const uint8_t> value = AsBytes(copy);
    if (key.rfind("oem/", 0) == 0) {
      ASSIGN_OR_RETURN(const wire::KmsOem* oem, schemas::DecodeVerified<wire::KmsOem>(value, key));
      OemSpec spec;
      spec.name = std::string(schemas::Text(oem->name()));
      spec.signing_key.bytes = ToArray<32>(schemas::Bytes(oem->signing_public_key()));
      oems_[spec.name] = spec;
    } else if (key.rfind("product/", 0) == 0) {
      ASSIGN_OR_RETURN(const wire::Product* product, schemas::DecodeVerified<wire::Product>(value, key));
      ASSIGN_OR_RETURN(ProductSpec spec, ReadProduct(*product));
      products_[spec.name] = spec;
    } else if (key.rfind("plant/", 0) == 0) {
      ASSIGN_OR_RETURN(const wire::KmsPlant* plant, schemas::DecodeVerified<wire::KmsPlant>(value, key));
      PlantSpec spec;
      spec.plant = std::string(schemas::Text(plant->plant()));
      spec.curve_key = ToArray<32>(schemas::Bytes(plant->curve_public_key()));
      spec.wrap_key.bytes = ToArray<32>(schemas::Bytes(plant->wrap_public_key()));
      spec.signing_key.bytes = ToArray<32>(schemas::Bytes(plant->signing_public_key()));
      spec.config_version = plant->config_version();
      if (plant->stations() != nullptr) {
        for (const auto* s : *plant->stations()) {
          if (s == nullptr) continue;
          spec.stations.push_back({std::string(schemas::Text(s->station_id())),
                                   ToArray<32>(schemas::Bytes(s->curve_public_key()))});
        }
      }
      if (plant->sync() != nullptr) {
        spec.sync_mode = static_cast<uint8_t>(plant->sync()->mode());
        spec.sync_interval_s = plant->sync()->interval_s();
      }
      plants_[spec.plant] = spec;
    }
  }
  if (!it->status().ok()) return UnavailableError("reading the catalog: " + it->status().ToString());
  return Status::Ok();
}

std::vector<uint8_t> Catalog::BuildConfigUpdate(const PlantSpec& plant,
                                                const std::vector<ProductSpec>& products) const {
  flatbuffers::FlatBufferBuilder fbb(1024);
  std::vector<flatbuffers::Offset<wire::Product>> product_offsets;
  for (const ProductSpec& p : products) product_offsets.push_back(CreateProduct(fbb, p));
  std::vector<flatbuffers::Offset<wire::Station>> stations;
  for (const StationSpec& s : plant.stations) {
    stations.push_back(wire::CreateStation(fbb, fbb.CreateString(s.station_id),
                                           fbb.CreateVector(s.curve_key.data(), s.curve_key.size())));
  }
  auto sync = wire::CreateSyncPolicy(fbb, static_cast<wire::SyncMode>(plant.sync_mode),
                                     plant.sync_interval_s);
  std::vector<flatbuffers::Offset<wire::IssuingCa>> cas;
  if (issuing_cas_) {
    for (const IssuingCaConfig& ca : issuing_cas_(plant.plant)) {
      cas.push_back(wire::CreateIssuingCaDirect(fbb, ca.oem.c_str(), ca.key_name.c_str(),
                                                ca.certificate.c_str(), ca.oem_ca_certificate.c_str(),
                                                ca.budget_min, ca.budget_target));
    }
  }
  fbb.Finish(wire::CreateConfigUpdate(fbb, plant.config_version, fbb.CreateString(plant.plant),
                                      fbb.CreateVector(product_offsets), fbb.CreateVector(stations),
                                      sync, fbb.CreateVector(cas)));
  auto bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

void Catalog::PutPlant(broker::WriteContext& write, const PlantSpec& p) {
  flatbuffers::FlatBufferBuilder fbb(512);
  std::vector<flatbuffers::Offset<wire::Station>> stations;
  for (const StationSpec& s : p.stations) {
    stations.push_back(wire::CreateStation(fbb, fbb.CreateString(s.station_id),
                                           fbb.CreateVector(s.curve_key.data(), s.curve_key.size())));
  }
  auto sync = wire::CreateSyncPolicy(fbb, static_cast<wire::SyncMode>(p.sync_mode), p.sync_interval_s);
  fbb.Finish(wire::CreateKmsPlant(
      fbb, fbb.CreateString(p.plant), fbb.CreateVector(p.curve_key.data(), 32),
      fbb.CreateVector(p.wrap_key.bytes.data(), 32), fbb.CreateVector(p.signing_key.bytes.data(), 32),
      p.config_version, fbb.CreateVector(stations), sync, NowUs()));
  write.batch().Put(context_->Family(layout::kCatalog), "plant/" + p.plant, FinishedText(fbb));
}

Status Catalog::QueueConfig(broker::WriteContext& write, PlantSpec& plant,
                            const std::vector<ProductSpec>& products) {
  ++plant.config_version;
  PutPlant(write, plant);
  std::vector<uint8_t> update = BuildConfigUpdate(plant, products);
  return write.Send({plant.plant, "control"}, wire::MessageType::ConfigUpdate, update).status();
}

Status Catalog::CopyPlantAndProducts(const std::string& plant_id, PlantSpec& plant,
                                     std::vector<ProductSpec>& products) const {
  std::shared_lock lock(mu_);
  auto it = plants_.find(plant_id);
  if (it == plants_.end()) return NotFoundError("plant " + plant_id + " is not registered");
  plant = it->second;
  for (const auto& [name, p] : products_) products.push_back(p);
  return Status::Ok();
}

Status Catalog::QueuePlantConfig(const std::string& plant_id, broker::WriteContext& write) {
  PlantSpec plant;
  std::vector<ProductSpec> products;
  RETURN_IF_ERROR(CopyPlantAndProducts(plant_id, plant, products));
  RETURN_IF_ERROR(QueueConfig(write, plant, products));
  // Remembered before the write commits: if it fails, the next change skips a version number,
  // which a PKS accepts (it only needs versions to rise).
  std::unique_lock lock(mu_);
  plants_[plant.plant] = plant;
  return Status::Ok();
}

bool Catalog::CurveKeyInUse(const broker::CurvePublicKey& key) const {
  for (const auto& [name, plant] : plants_) {
    if (plant.curve_key == key) return true;
    for (const StationSpec& s : plant.stations) {
      if (s.curve_key == key) return true;
    }
  }
  return false;
}

Status Catalog::AddOem(const OemSpec& oem, const std::string& actor) {
  RETURN_IF_ERROR(broker::ValidateName("OEM name", oem.name));
  {
    std::shared_lock lock(mu_);
    if (auto it = oems_.find(oem.name); it != oems_.end()) {
      if (it->second.signing_key == oem.signing_key) return Status::Ok();
      return AlreadyExistsError("OEM " + oem.name + " is already registered with another signing key");
    }
  }
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    flatbuffers::FlatBufferBuilder fbb(128);
    fbb.Finish(wire::CreateKmsOem(fbb, fbb.CreateString(oem.name),
                                  fbb.CreateVector(oem.signing_key.bytes.data(), 32), NowUs()));
    write.batch().Put(context_->Family(layout::kCatalog), "oem/" + oem.name, FinishedText(fbb));
    audit_->Append(write, actor, "oem.add", oem.name,
                   "{\"signing_key\":\"" + ToHex(oem.signing_key.bytes) + "\"}");
    return Status::Ok();
  });
  RETURN_IF_ERROR(committed);
  std::unique_lock lock(mu_);
  oems_[oem.name] = oem;
  return Status::Ok();
}

Status Catalog::AddProduct(const ProductSpec& product, const std::string& actor) {
  RETURN_IF_ERROR(ValidateProduct(product));
  std::vector<PlantSpec> plants;
  std::vector<ProductSpec> products;
  {
    std::shared_lock lock(mu_);
    if (!oems_.count(product.oem)) {
      return NotFoundError("OEM " + product.oem + " is not registered (keylinectl oem add first)");
    }
    if (auto it = products_.find(product.name); it != products_.end()) {
      if (SameProduct(it->second, product)) return Status::Ok();
      return AlreadyExistsError("product " + product.name + " already exists with other settings");
    }
    for (const auto& [name, p] : products_) products.push_back(p);
    for (const auto& [name, p] : plants_) plants.push_back(p);
  }
  products.push_back(product);
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    flatbuffers::FlatBufferBuilder fbb(512);
    fbb.Finish(CreateProduct(fbb, product));
    write.batch().Put(context_->Family(layout::kCatalog), "product/" + product.name, FinishedText(fbb));
    std::vector<PlantSpec> updated = plants;
    for (PlantSpec& plant : updated) RETURN_IF_ERROR(QueueConfig(write, plant, products));
    audit_->Append(write, actor, "product.add", product.name,
                   "{\"oem\":" + Quote(product.oem) + ",\"slots\":" + std::to_string(product.slots.size()) +
                       ",\"plants_updated\":" + std::to_string(updated.size()) + "}");
    plants = std::move(updated);
    return Status::Ok();
  });
  RETURN_IF_ERROR(committed);
  std::unique_lock lock(mu_);
  products_[product.name] = product;
  for (const PlantSpec& p : plants) plants_[p.plant] = p;
  return Status::Ok();
}

Status Catalog::AddPlant(const PlantSpec& plant_in, const std::string& actor) {
  RETURN_IF_ERROR(broker::ValidateName("plant id", plant_in.plant));
  if (plant_in.plant == "kms") return InvalidArgumentError("plant id 'kms' is the KMS's own name");
  PlantSpec plant = plant_in;
  plant.config_version = 0;
  plant.stations.clear();
  plant.sync_mode = 1;
  plant.sync_interval_s = 0;
  std::vector<ProductSpec> products;
  {
    std::shared_lock lock(mu_);
    if (auto it = plants_.find(plant.plant); it != plants_.end()) {
      const PlantSpec& old = it->second;
      if (old.curve_key == plant.curve_key && old.wrap_key == plant.wrap_key &&
          old.signing_key == plant.signing_key) {
        return Status::Ok();
      }
      return AlreadyExistsError("plant " + plant.plant + " is already registered with other keys");
    }
    if (CurveKeyInUse(plant.curve_key)) {
      return AlreadyExistsError("Curve key " + broker::CurvePublicKeyToZ85(plant.curve_key) +
                                " is already registered to another plant or station");
    }
    for (const auto& [name, p] : products_) products.push_back(p);
  }
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    PlantSpec queued = plant;
    RETURN_IF_ERROR(QueueConfig(write, queued, products));
    audit_->Append(write, actor, "plant.add", plant.plant,
                   "{\"curve_key\":" + Quote(broker::CurvePublicKeyToZ85(plant.curve_key)) +
                       ",\"wrap_key\":\"" + ToHex(plant.wrap_key.bytes) + "\",\"signing_key\":\"" +
                       ToHex(plant.signing_key.bytes) + "\"}");
    plant = queued;
    return Status::Ok();
  });
  RETURN_IF_ERROR(committed);
  std::unique_lock lock(mu_);
  plants_[plant.plant] = plant;
  return Status::Ok();
}

Status Catalog::AddStation(const std::string& plant_id, const StationSpec& station,
                           const std::string& actor) {
  RETURN_IF_ERROR(broker::ValidateName("station id", station.station_id));
  PlantSpec plant;
  std::vector<ProductSpec> products;
  {
    std::shared_lock lock(mu_);
    auto it = plants_.find(plant_id);
    if (it == plants_.end()) return NotFoundError("plant " + plant_id + " is not registered");
    plant = it->second;
    for (const StationSpec& s : plant.stations) {
      if (s.station_id == station.station_id) {
        if (s.curve_key == station.curve_key) return Status::Ok();
        return AlreadyExistsError("station " + station.station_id + " at " + plant_id +
                                  " is already registered with another Curve key");
      }
    }
    if (CurveKeyInUse(station.curve_key)) {
      return AlreadyExistsError("Curve key " + broker::CurvePublicKeyToZ85(station.curve_key) +
                                " is already registered to another plant or station");
    }
    for (const auto& [name, p] : products_) products.push_back(p);
  }
  plant.stations.push_back(station);
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    PlantSpec queued = plant;
    RETURN_IF_ERROR(QueueConfig(write, queued, products));
    audit_->Append(write, actor, "station.add", plant_id + "/" + station.station_id,
                   "{\"curve_key\":" + Quote(broker::CurvePublicKeyToZ85(station.curve_key)) + "}");
    plant = queued;
    return Status::Ok();
  });
  RETURN_IF_ERROR(committed);
  std::unique_lock lock(mu_);
  plants_[plant.plant] = plant;
  return Status::Ok();
}

Status Catalog::SetSyncPolicy(const std::string& plant_id, uint8_t mode, uint32_t interval_s,
                              const std::string& actor) {
  if (mode != static_cast<uint8_t>(wire::SyncMode::CONTINUOUS) &&
      mode != static_cast<uint8_t>(wire::SyncMode::INTERVAL)) {
    return InvalidArgumentError("sync mode must be continuous or interval");
  }
  if (mode == static_cast<uint8_t>(wire::SyncMode::INTERVAL) && (interval_s < 1 || interval_s > 86400)) {
    return OutOfRangeError("sync interval must be 1..86400 seconds in interval mode");
  }
  if (mode == static_cast<uint8_t>(wire::SyncMode::CONTINUOUS)) interval_s = 0;
  PlantSpec plant;
  std::vector<ProductSpec> products;
  RETURN_IF_ERROR(CopyPlantAndProducts(plant_id, plant, products));
  plant.sync_mode = mode;
  plant.sync_interval_s = interval_s;
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    PlantSpec queued = plant;
    RETURN_IF_ERROR(QueueConfig(write, queued, products));
    audit_->Append(write, actor, "sync_policy.set", plant_id,
                   std::string("{\"mode\":\"") + (mode == 1 ? "continuous" : "interval") +
                       "\",\"interval_s\":" + std::to_string(interval_s) + "}");
    plant = queued;
    return Status::Ok();
  });
  RETURN_IF_ERROR(committed);
  std::unique_lock lock(mu_);
  plants_[plant.plant] = plant;
  return Status::Ok();
}

std::optional<OemSpec> Catalog::Oem(const std::string& name) const {
  std::shared_lock lock(mu_);
  auto it = oems_.find(name);
  if (it == oems_.end()) return std::nullopt;
  return it->second;
}

std::optional<ProductSpec> Catalog::Product(const std::string& name) const {
  std::shared_lock lock(mu_);
  auto it = products_.find(name);
  if (it == products_.end()) return std::nullopt;
  return it->second;
}

std::optional<PlantSpec> Catalog::Plant(const std::string& plant) const {
  std::shared_lock lock(mu_);
  auto it = plants_.find(plant);
  if (it == plants_.end()) return std::nullopt;
  return it->second;
}

std::vector<ProductSpec> Catalog::Products() const {
  std::shared_lock lock(mu_);
  std::vector<ProductSpec> out;
  for (const auto& [name, p] : products_) out.push_back(p);
  return out;
}

std::vector<PlantSpec> Catalog::Plants() const {
  std::shared_lock lock(mu_);
  std::vector<PlantSpec> out;
  for (const auto& [name, p] : plants_) out.push_back(p);
  return out;
}

}  // namespace keyline::kms
