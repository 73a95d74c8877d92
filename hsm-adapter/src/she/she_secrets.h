// The guarded-memory insides of SheTransportKey, shared by she_key_store.cc and
// she_store_seal.cc.
#pragma once

#include "keyline/hsm/she_store_seal.h"
#include "secret_bytes.h"

namespace keyline::hsm {

struct SheTransportKey::Secret {
  internal::SecretBytes key;  // 16 bytes
};

}  // namespace keyline::hsm
