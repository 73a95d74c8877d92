// Values the KMS keeps in RocksDB (schemas/kms_store.fbs) and reads back at start-up and on
// every request: a corrupt disk or an older release's record is refused, never read out of
// bounds. Selector (first byte, mod 10): KmsOem, Product, KmsPlant, KmsKeySet, KmsBatch,
// AuditEntry, KmsVerification, PlantStatus (the last one kept per plant), KmsOemCa, KmsPlantCa.
#include "fuzz_support.h"
#include "keyline/wire/kms_store_generated.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keyline::wire;
  return keyline::fuzz::DecodeOneOf<KmsOem, Product, KmsPlant, KmsKeySet, KmsBatch, AuditEntry,
                                    KmsVerification, PlantStatus, KmsOemCa, KmsPlantCa>(data, size);
}
