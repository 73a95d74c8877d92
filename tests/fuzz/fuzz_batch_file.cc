// OEM key batch files (.klb) as `keylinectl oem import` hands them to the KMS:
// kms::ParseBatchFile (identifier, Verifier on the file and its signed body, format checks).
// A parsed file is checked against what the importer relies on: the signed bytes lie inside
// the file, the chunk sizes add up to the key set count, and every key set id is
// "<batch_id>.<index>" in order.
#include <numeric>
#include <string>

#include "fuzz_support.h"
#include "keyline/kms/batch_file.h"
#include "keyline/wire/oem_batch_generated.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace keyline;
  const std::vector<uint8_t> bytes = fuzz::Copy({data, size});
  auto view = kms::ParseBatchFile(bytes);
  if (!view.ok()) {
    FUZZ_CHECK(!view.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(view->body != nullptr);
  FUZZ_CHECK(!view->signed_bytes.empty());
  FUZZ_CHECK(view->signed_bytes.data() >= bytes.data());
  FUZZ_CHECK(view->signed_bytes.data() + view->signed_bytes.size() <= bytes.data() + bytes.size());
  FUZZ_CHECK(!view->slots.empty());
  FUZZ_CHECK(view->key_set_count > 0);
  FUZZ_CHECK(!view->chunk_sizes.empty());
  FUZZ_CHECK(std::accumulate(view->chunk_sizes.begin(), view->chunk_sizes.end(), uint64_t{0}) ==
             view->key_set_count);
  FUZZ_CHECK(view->batch_id.rfind(view->oem + "-", 0) == 0);

  // What the importer reads next: each chunk's sealed bytes and its key set ids.
  const wire::OemBatchBody* body = view->body;
  FUZZ_CHECK(body->chunks() != nullptr && body->chunks()->size() == view->chunk_sizes.size());
  uint64_t index = 0;
  for (flatbuffers::uoffset_t c = 0; c < body->chunks()->size(); ++c) {
    const wire::OemBatchChunk* chunk = body->chunks()->Get(c);
    FUZZ_CHECK(!schemas::Bytes(chunk->wrapped()).empty());
    FUZZ_CHECK(chunk->key_set_ids()->size() == view->chunk_sizes[c]);
    for (const flatbuffers::String* id : *chunk->key_set_ids()) {
      FUZZ_CHECK(id->string_view() == view->batch_id + "." + std::to_string(index));
      ++index;
    }
    (void)kms::ChunkContext(view->batch_id, c);
  }
  FUZZ_CHECK(index == view->key_set_count);
  (void)schemas::Bytes(body->kms_import_key());
  (void)body->created_at_us();
  return 0;
}
