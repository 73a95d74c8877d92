// Keys and configuration files of a planned lab (lab_layout.h), written before any process
// starts. Secret key files are 0600 (the services refuse keys that group or others can read);
// public key files hold one line of Z85.
#pragma once

#include <filesystem>
#include <string>

#include "keyline/common/status.h"
#include "keyline/lab/lab_layout.h"

namespace keyline::lab {

// The lab's directories (DIR, logs, oem, kms, one per plant), mode 0700.
[[nodiscard]] Status CreateLabDirectories(const LabLayout& lab);

// Writes `text` to `path` with `mode` (through a temp file and a rename).
[[nodiscard]] Status WriteTextFile(const std::filesystem::path& path, const std::string& text,
                                   std::filesystem::perms mode);

// A new Curve key pair in `key_file` (0600) and its public key in `public_file`; returns the
// public key's Z85 text.
[[nodiscard]] StatusOr<std::string> CreateCurveKeyFiles(const std::filesystem::path& key_file,
                                                        const std::filesystem::path& public_file);

// The transport key: 32 random hex digits (the ECUs' factory MASTER_ECU_KEY), 0600.
[[nodiscard]] Status CreateTransportKey(const LabLayout& lab);

// A plant's key files (PKS HSM master key, Curve key pairs of the PKS, the ECU simulator and
// every injector, the simulator's state key) and its configuration files. A plant without
// stations gets only its PKS's.
[[nodiscard]] Status WritePlantFiles(const LabLayout& lab, const PlantLayout& plant);

}  // namespace keyline::lab
