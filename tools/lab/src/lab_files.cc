#include "keyline/lab/lab_files.h"

#include <fstream>

#include "keyline/broker/curve_keys.h"
#include "keyline/hsm/she_store_seal.h"
#include "keyline/hsm/software_custody.h"

namespace keyline::lab {
namespace {

namespace fs = std::filesystem;

constexpr fs::perms kPrivate = fs::perms::owner_read | fs::perms::owner_write;
constexpr fs::perms kPublic = kPrivate | fs::perms::group_read | fs::perms::others_read;

}  // namespace

Status CreateLabDirectories(const LabLayout& lab) {
  std::vector<fs::path> dirs = {lab.workdir, lab.logs_dir, lab.oem_dir, lab.kms_dir};
  for (const auto& plant : lab.plants) dirs.push_back(plant.dir);
  for (const auto& dir : dirs) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return UnavailableError(dir.string() + ": cannot create: " + ec.message());
    fs::permissions(dir, fs::perms::owner_all, ec);
  }
  return Status::Ok();
}

Status WriteTextFile(const fs::path& path, const std::string& text, fs::perms mode) {
  fs::path temp = path;
  temp += ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return UnavailableError(path.string() + ": cannot write");
  }
  std::error_code ec;
  fs::permissions(temp, mode, ec);
  if (!ec) fs::rename(temp, path, ec);
  if (ec) return UnavailableError(path.string() + ": " + ec.message());
  return Status::Ok();
}

StatusOr<std::string> CreateCurveKeyFiles(const fs::path& key_file, const fs::path& public_file) {
  ASSIGN_OR_RETURN(broker::CurveKeyPair keys, broker::CurveKeyPair::Generate());
  RETURN_IF_ERROR(keys.Save(key_file));
  std::string z85 = broker::CurvePublicKeyToZ85(keys.public_key());
  RETURN_IF_ERROR(WriteTextFile(public_file, z85 + "\n", kPublic));
  return z85;
}

Status CreateTransportKey(const LabLayout& lab) { return hsm::WriteRandomKeyFile(lab.transport_key, 16); }

Status WritePlantFiles(const LabLayout& lab, const PlantLayout& plant) {
  RETURN_IF_ERROR(hsm::CreateMasterKeyFile(plant.pks_master_key, {}));
  RETURN_IF_ERROR(CreateCurveKeyFiles(plant.pks_curve_key, plant.pks_curve_public).status());
  RETURN_IF_ERROR(WriteTextFile(plant.pks_config, PksConfigText(lab, plant), kPublic));
  if (plant.stations.empty()) return Status::Ok();
  RETURN_IF_ERROR(CreateCurveKeyFiles(plant.ecu_sim_curve_key, plant.ecu_sim_curve_public).status());
  RETURN_IF_ERROR(hsm::WriteRandomKeyFile(plant.ecu_sim_state_key, 32));
  for (const auto& station : plant.stations) {
    RETURN_IF_ERROR(CreateCurveKeyFiles(station.curve_key, station.curve_public).status());
    RETURN_IF_ERROR(WriteTextFile(station.config, InjectorConfigText(plant, station), kPublic));
  }
  return WriteTextFile(plant.ecu_sim_config, EcuSimConfigText(lab, plant), kPublic);
}

}  // namespace keyline::lab
