#include "keyline/hsm/pkcs11_custody.h"

namespace keyline::hsm {

StatusOr<std::unique_ptr<KeyCustody>> CreatePkcs11Custody(const Pkcs11CustodyOptions&) {
  return UnimplementedError("the PKCS#11 backend is not built yet");
}

}  // namespace keyline::hsm
