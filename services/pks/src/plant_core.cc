#include "plant_core.h"

#include "keyline/common/log.h"

namespace keyline::pks {

Status PlantCore::SyncWithDatabase() {
  uint64_t failed = store->counters().failed_writes;
  if (failed == failed_writes_seen) return Status::Ok();
  spdlog::warn("a write failed: reloading the plant's state from its database");
  auto loaded = PlantState::Load(database, plant_id);
  if (!loaded.ok()) return UnavailableError("reloading the plant's state: " + loaded.status().message());
  state = std::move(*loaded);
  failed_writes_seen = failed;
  return Status::Ok();
}

namespace {
constexpr std::string_view kPackagePrefix = "pkg-";
}  // namespace

std::string PackageIdFor(const std::string& key_set_id) {
  return std::string(kPackagePrefix) + key_set_id;
}

const KeySet* KeySetOfPackage(const PlantState& state, std::string_view package_id) {
  if (!package_id.starts_with(kPackagePrefix)) return nullptr;
  return state.Find(std::string(package_id.substr(kPackagePrefix.size())));
}

}  // namespace keyline::pks
