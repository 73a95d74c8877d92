// The ECU certificate lines of a verification file, as the OEM checks them
// (docs/certificates.md): the chain up to the OEM CA, the ECU's UID in the subject, the
// validity, and the ECU's signed confirmation.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

namespace keyline::keylinectl {

// Whether a verification file line is an ECU certificate line (else a SHE slot line).
inline bool IsCertificateLine(const nlohmann::json& line) { return line.contains("certificate"); }

// "" when the certificate line checks out against `oem_ca_pem` at `now`, else what is wrong.
std::string CheckCertificateLine(const nlohmann::json& line, const std::string& oem_ca_pem,
                                 std::chrono::sys_seconds now);

}  // namespace keyline::keylinectl
