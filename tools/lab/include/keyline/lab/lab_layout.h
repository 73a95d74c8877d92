// What a lab consists of and where each part lives: names, files, loopback ports, and the text
// of every configuration file. Pure planning; lab_files.h writes keys and configs from it.
//
//   DIR/lab.json                     what keyline-lab knows (lab_state.h)
//   DIR/keylinectl.env               `. DIR/keylinectl.env` to run keylinectl against the lab
//   DIR/transport.key                the ECUs' factory MASTER_ECU_KEY (0600), in every PKS's HSM
//   DIR/oem-secrets.jsonl            the OEM's copy of its keys (written by keylinectl)
//   DIR/oem-ca.pem                   the OEM CA certificate: every ECU certificate chains to it
//   DIR/oem/                         the OEM's signing key and batch files; oem/ca/ its CA's key
//   DIR/kms/                         kms.toml, admin.key, kms.curve.pub, data/
//   DIR/plant-a/                     pks.toml, ecu-sim.toml, injector-1.toml, ... with their keys
//                                    and data dirs
//   DIR/logs/NAME.log                stdout and stderr of every lab process
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "keyline/common/status.h"

namespace keyline::lab {

struct LabOptions {
  std::filesystem::path workdir;  // required; created if missing, must hold no lab yet
  std::filesystem::path bin_dir;  // the Keyline binaries; default: keyline-lab's own directory
  int plants = 2;                 // 1..26: plant-a, plant-b, ...
  // Per plant, 0..9: one injector each. 0: no injector and no ECU simulator (KMS and PKSs only).
  int stations = 2;
  uint32_t key_sets = 1000;       // size of the OEM batch imported at start
  uint32_t min_stock = 10;        // the product's quota: a plant asks for stock below this,
  uint32_t target_stock = 20;     // and fills up to this
  std::string oem = "acme";
  std::string product = "bcm";
};

struct StationLayout {
  std::string station;                  // "plant-a-eol-1", as registered at the KMS
  std::string injector;                 // process name, "injector-a1"
  std::filesystem::path config;         // plant-a/injector-1.toml
  std::filesystem::path curve_key;      // the injector's Curve key pair (0600)
  std::filesystem::path curve_public;   // its public key (Z85), for the ecu-sim and the KMS
  std::filesystem::path tester_key;     // the EOL tester's key pair, created by the injector
  std::filesystem::path data_dir;
  std::string eol_endpoint;             // where the EOL tester calls it
};

struct PlantLayout {
  std::string plant;                    // "plant-a"
  std::string letter;                   // "a"
  std::filesystem::path dir;            // DIR/plant-a
  std::string relay;                    // process names
  std::string pks;
  std::string ecu_sim;                  // "" when the plant has no stations
  std::string relay_endpoint;           // the PKS dials this; it forwards to the KMS link
  std::filesystem::path pks_config;
  std::filesystem::path pks_curve_key;
  std::filesystem::path pks_curve_public;
  std::filesystem::path pks_master_key;
  std::filesystem::path pks_data_dir;
  std::string pks_endpoint;             // [link] listen: the injectors dial it
  std::filesystem::path ecu_sim_config;
  std::filesystem::path ecu_sim_curve_key;
  std::filesystem::path ecu_sim_curve_public;
  std::filesystem::path ecu_sim_state_key;
  std::filesystem::path ecu_sim_data_dir;
  std::string ecu_endpoint;             // [ecu] listen
  std::vector<StationLayout> stations;
};

struct LabLayout {
  LabOptions options;
  std::filesystem::path workdir;        // absolute
  std::filesystem::path logs_dir;
  std::filesystem::path transport_key;
  std::filesystem::path oem_dir;
  std::filesystem::path oem_key;        // keylinectl oem keygen --out
  std::filesystem::path batch_file;
  std::filesystem::path oem_secrets;
  std::filesystem::path oem_ca_dir;          // keylinectl oem ca generate --dir: the OEM CA's key
  std::filesystem::path oem_ca_certificate;  // WORKDIR/oem-ca.pem: the anchor ECU chains end at
  std::filesystem::path keylinectl_env_file;
  std::filesystem::path kms_dir;
  std::filesystem::path kms_config;
  std::filesystem::path kms_data_dir;
  std::filesystem::path kms_master_key;
  std::filesystem::path kms_curve_public;  // written from `keyline-kms keys`, read by the PKSs
  std::filesystem::path admin_key;
  std::string kms_link_endpoint;
  std::string kms_admin_endpoint;
  std::string transport_key_ref;        // the product's --transport-key
  std::vector<PlantLayout> plants;

  std::filesystem::path LogFile(const std::string& process) const;
};

// Checks the options and lays the lab out, picking free loopback ports for every endpoint.
[[nodiscard]] StatusOr<LabLayout> PlanLab(const LabOptions& options);

// `count` distinct TCP ports that were free on 127.0.0.1 a moment ago (bound together with
// port 0, then released), so that no two endpoints of the lab get the same one.
[[nodiscard]] StatusOr<std::vector<int>> PickFreeLoopbackPorts(size_t count);

// The configuration files, exactly as written; relative paths are relative to each file.
std::string KmsConfigText(const LabLayout& lab, const std::string& admin_public_z85);
std::string PksConfigText(const LabLayout& lab, const PlantLayout& plant);
std::string EcuSimConfigText(const LabLayout& lab, const PlantLayout& plant);
std::string InjectorConfigText(const PlantLayout& plant, const StationLayout& station);

}  // namespace keyline::lab
