// Values a PKS keeps in RocksDB (schemas/pks_store.fbs) and reads back at start-up and on
// every request. Selector (first byte, mod 3): StoredKeySet, StoredStockRequest, ConfigUpdate
// (the plant's configuration as last received from the KMS).
#include "fuzz_support.h"
#include "keyline/wire/pks_store_generated.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keyline::wire;
  return keyline::fuzz::DecodeOneOf<StoredKeySet, StoredStockRequest, ConfigUpdate>(data, size);
}
