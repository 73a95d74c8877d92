// Loading a PKCS#11 module by path. A module is C_Initialize'd once per process and never
// unloaded: tokens and other custodies in the same process share it, and SoftHSM under ASan
// needs to stay loaded (TOOLCHAIN.md).
#pragma once

#include <filesystem>
#include <string>

#include "keyline/common/status.h"
#include "pkcs11/p11.h"

namespace keyline::hsm::internal {

// The function list of the module at `path`, loaded and initialised on first use.
[[nodiscard]] StatusOr<CK_FUNCTION_LIST_PTR> LoadPkcs11Module(const std::filesystem::path& path);

// "CKR_PIN_INCORRECT (0xa0)".
std::string CkrName(CK_RV rv);

// An error naming the call and the return value: "C_Login: CKR_PIN_INCORRECT (0xa0)".
Status CkError(CK_RV rv, std::string_view call, StatusCode code = StatusCode::kInternal);

}  // namespace keyline::hsm::internal
