// InjectionRecords as the KMS ingests them from a plant (and as keyline-queue shows them):
// schemas::DecodeInjectionRecord verifies the record and its signed nested body. A decoded
// record is read whole, and rebuilt with schemas::BuildInjectionRecord, which must decode to
// the same signed bytes, signer and signature.
#include <algorithm>
#include <string>

#include "fuzz_support.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/json.h"
#include "samples.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keyline;
  const std::vector<uint8_t> bytes = fuzz::Copy({data, size});
  schemas::DecodeError why{};
  auto decoded = schemas::DecodeInjectionRecord(bytes, {}, &why);
  if (!decoded.ok()) {
    fuzz::CheckRefusal(decoded.status(), why);
    return 0;
  }
  const schemas::VerifiedRecord& record = *decoded;
  FUZZ_CHECK(record.body != nullptr);
  FUZZ_CHECK(record.signature.size() == schemas::kSignatureBytes);
  FUZZ_CHECK(!record.signed_bytes.empty());
  FUZZ_CHECK(std::ranges::equal(record.signed_bytes, schemas::Bytes(record.record->body())));
  (void)schemas::testing::ReadAll(*record.record);
  (void)schemas::testing::ReadAll(*record.body);
  // What the KMS keeps of a record: the body's identifying fields, then the slots.
  (void)schemas::Text(record.body->key_set_id());
  (void)schemas::CheckFixedBytes(record.body->ecu_uid(), schemas::kEcuUidBytes, "ecu_uid");
  const std::string json =
      schemas::PayloadToJson(wire::MessageType::InjectionRecord, bytes);
  FUZZ_CHECK(!json.empty() && json.front() == '{');

  const std::string signer(schemas::Text(record.record->signer()));
  const std::vector<uint8_t> rebuilt =
      schemas::BuildInjectionRecord(record.signed_bytes, signer, record.signature);
  if (rebuilt.size() > schemas::kMaxMessageBytes) return 0;
  auto again = schemas::DecodeInjectionRecord(rebuilt);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(std::ranges::equal(again->signed_bytes, record.signed_bytes));
  FUZZ_CHECK(std::ranges::equal(again->signature, record.signature));
  FUZZ_CHECK(schemas::Text(again->record->signer()) == signer);
  FUZZ_CHECK(again->body->record_sequence() == record.body->record_sequence());
  return 0;
}
