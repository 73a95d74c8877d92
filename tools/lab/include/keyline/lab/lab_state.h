// DIR/lab.json: everything a keyline-lab command needs to act on a lab that another command,
// maybe in another shell, started. Written atomically (temp file + rename) after every change,
// so a reader never sees half a file, and read-modify-write under an flock on DIR/lab.lock, so
// two commands do not lose each other's changes.
//
// No secret is in it: keys are referenced by file path, and a process's environment holds only
// the variables InheritedEnvironment() passes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/lab/supervisor.h"

namespace keyline::lab {

// One long-running process of the lab, with what it takes to start it again exactly as before.
struct LabProcess {
  std::string name;                              // "kms", "relay-a", "pks-a", "ecu-sim-a", "injector-a1"
  std::string role;                              // kms | relay | pks | ecu-sim | injector
  std::string plant;                             // "" for the KMS
  ProcessIdentity identity;                      // the last start; pid 0: never started
  std::vector<std::string> argv;
  std::filesystem::path cwd;
  Environment env;
  std::map<std::string, std::string> endpoints;  // "link" -> "tcp://127.0.0.1:40123", ...
  std::filesystem::path config;                  // its TOML file ("" for a relay)
  std::filesystem::path data_dir;                // "" for a relay
  std::filesystem::path log_file;
  std::string ready_text;                        // the log line that says it serves
};

struct LabStation {
  std::string station;   // "plant-a-eol-1"
  std::string injector;  // the process name, "injector-a1"
};

struct LabPlant {
  std::string plant;     // "plant-a"
  std::string pks;       // process names
  std::string relay;
  std::string ecu_sim;
  std::vector<LabStation> stations;
  bool cut = false;      // its relay refuses the KMS link (keyline-lab cut)
};

struct LabState {
  std::filesystem::path workdir;          // absolute
  std::filesystem::path bin_dir;          // where the Keyline binaries are
  std::string oem;
  std::string product;
  std::string transport_key_ref;
  std::filesystem::path oem_secrets;      // the OEM's copy of its keys (JSON Lines)
  std::string kms_signing_key;            // hex, checks verification files
  Environment keylinectl_env;             // KEYLINE_KMS, KEYLINE_KMS_CURVE_KEY, KEYLINE_ADMIN_KEY
  std::vector<LabPlant> plants;
  std::vector<LabProcess> processes;      // in start order

  LabProcess* FindProcess(const std::string& name);
  const LabProcess* FindProcess(const std::string& name) const;
  LabPlant* FindPlant(const std::string& plant);
};

std::filesystem::path LabFile(const std::filesystem::path& workdir);

// Reads DIR/lab.json; a missing file says that no lab was started there.
[[nodiscard]] StatusOr<LabState> ReadLabState(const std::filesystem::path& workdir);
[[nodiscard]] Status WriteLabState(const LabState& state);

// Reads, lets `change` edit, and writes back, holding DIR/lab.lock throughout. `change` may
// fail; then nothing is written.
[[nodiscard]] Status UpdateLabState(const std::filesystem::path& workdir,
                                    const std::function<Status(LabState&)>& change);

}  // namespace keyline::lab
