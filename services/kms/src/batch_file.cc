#include "keyline/kms/batch_file.h"

#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include <flatbuffers/flatbuffers.h>
#include <sodium.h>

#include "keyline/broker/queue_id.h"
#include "keyline/common/hex.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/oem_batch_generated.h"

namespace keyline::kms {
namespace {

// Keys per WrapForPeer call: the custody seals at most 4096 keys at once.
constexpr size_t kMaxKeysPerChunk = 4096;
constexpr size_t kMaxKeySetsPerChunk = 1024;

size_t KeySetsPerChunk(size_t slots) {
  return std::min(kMaxKeySetsPerChunk, kMaxKeysPerChunk / std::max<size_t>(slots, 1));
}

Status ValidateBatchId(const std::string& batch_id, const std::string& oem) {
  RETURN_IF_ERROR(broker::ValidateName("batch id", batch_id));
  if (batch_id.find('.') != std::string::npos) {
    return InvalidArgumentError("batch id '" + batch_id + "' contains '.', which separates key set numbers");
  }
  if (batch_id.rfind(oem + "-", 0) != 0) {
    return InvalidArgumentError("batch id '" + batch_id + "' must start with its OEM: '" + oem + "-'");
  }
  return Status::Ok();
}

// Secrets file rows are written in clear by design; keep them off the heap as little as we can.
struct WipedString {
  std::string text;
  ~WipedString() { sodium_memzero(text.data(), text.size()); }
};

}  // namespace

std::string ChunkContext(const std::string& batch_id, size_t chunk_index) {
  return "klb/" + batch_id + "/chunk/" + std::to_string(chunk_index);
}

StatusOr<std::vector<uint8_t>> ReadFileBytes(const std::filesystem::path& path, size_t max_bytes) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return NotFoundError(path.string() + ": cannot read: " + ec.message());
  if (size > max_bytes) {
    return ResourceExhaustedError(path.string() + ": " + std::to_string(size) +
                                  " bytes is more than the " + std::to_string(max_bytes) + "-byte limit");
  }
  std::vector<uint8_t> bytes(size);
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size))) {
    return UnavailableError(path.string() + ": read failed");
  }
  return bytes;
}

StatusOr<std::string> WriteOemBatch(hsm::KeyCustody& custody, hsm::KeyHandle oem_signing_key,
                                    const OemBatchSpec& spec, const std::filesystem::path& out,
                                    const std::optional<std::filesystem::path>& secrets) {
  RETURN_IF_ERROR(broker::ValidateName("OEM", spec.oem));
  RETURN_IF_ERROR(broker::ValidateName("product", spec.product));
  if (spec.count == 0) return InvalidArgumentError("--count must be at least 1");
  if (spec.slots.empty()) return InvalidArgumentError("a key set needs at least one slot");
  if (sodium_init() < 0) return InternalError("libsodium failed to initialise");
  std::string batch_id = spec.batch_id;
  if (batch_id.empty()) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> random, custody.Random(8));
    batch_id = spec.oem + "-" + ToHex(random);
  }
  RETURN_IF_ERROR(ValidateBatchId(batch_id, spec.oem));

  std::ofstream secrets_out;
  if (secrets) {
    mode_t old_mask = umask(077);
    secrets_out.open(*secrets, std::ios::trunc);
    umask(old_mask);
    if (!secrets_out) return UnavailableError(secrets->string() + ": cannot write");
  }

  const size_t per_chunk = KeySetsPerChunk(spec.slots.size());
  flatbuffers::FlatBufferBuilder fbb(1 << 20);
  std::vector<flatbuffers::Offset<wire::OemBatchChunk>> chunks;
  uint64_t index = 0;
  for (size_t chunk = 0; index < spec.count; ++chunk) {
    const size_t sets = static_cast<size_t>(std::min<uint64_t>(per_chunk, spec.count - index));
    const size_t key_count = sets * spec.slots.size();
    ASSIGN_OR_RETURN(std::vector<uint8_t> random, custody.Random(key_count * 16));
    std::vector<hsm::KeyHandle> handles;
    handles.reserve(key_count);
    auto destroy = [&] {
      for (const hsm::KeyHandle& h : handles) (void)custody.DestroyKey(h);
      sodium_memzero(random.data(), random.size());
    };
    std::vector<flatbuffers::Offset<flatbuffers::String>> ids;
    for (size_t s = 0; s < sets; ++s) {
      const std::string id = batch_id + "." + std::to_string(index + s);
      ids.push_back(fbb.CreateString(id));
      WipedString line;
      if (secrets) {
        line.text = "{\"key_set_id\": \"" + id + "\", \"product\": \"" + spec.product + "\", \"slots\": [";
      }
      for (size_t k = 0; k < spec.slots.size(); ++k) {
        const size_t at = (s * spec.slots.size() + k) * 16;
        WipedString hex{ToHex(std::span<const uint8_t>(random.data() + at, 16))};
        auto handle = custody.ImportKeyFromHex(hsm::KeyKind::kAes128, hex.text, "generated key");
        if (!handle.ok()) {
          destroy();
          return handle.status();
        }
        handles.push_back(*handle);
        if (secrets) {
          line.text += std::string(k ? ", " : "") + "{\"slot\": " + std::to_string(spec.slots[k]) +
                       ", \"key\": \"" + hex.text + "\"}";
        }
      }
      if (secrets) {
        line.text += "]}\n";
        secrets_out << line.text;
      }
    }
    auto sealed = custody.WrapForPeer(handles, spec.kms_import_key, ChunkContext(batch_id, chunk));
    destroy();
    if (!sealed.ok()) return sealed.status();
    auto ids_offset = fbb.CreateVector(ids);
    auto wrapped = schemas::CreateBytes(fbb, sealed->bytes);
    chunks.push_back(wire::CreateOemBatchChunk(fbb, ids_offset, wrapped));
    index += sets;
  }
  auto body = wire::CreateOemBatchBody(
      fbb, kBatchFormatVersion, fbb.CreateString(batch_id), fbb.CreateString(spec.oem),
      fbb.CreateString(spec.product), fbb.CreateVector(spec.slots), spec.count,
      fbb.CreateVector(spec.kms_import_key.bytes.data(), 32),
      static_cast<int64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count()),
      fbb.CreateVector(chunks));
  fbb.Finish(body);
  std::span<const uint8_t> body_bytes = schemas::FinishedBytes(fbb);
  ASSIGN_OR_RETURN(hsm::Signature signature, custody.Sign(oem_signing_key, body_bytes));

  flatbuffers::FlatBufferBuilder file(body_bytes.size() + 1024);
  // The nested body keeps the alignment its own builder gave it.
  file.ForceVectorAlignment(body_bytes.size(), 1, 16);
  auto body_vector = file.CreateVector(body_bytes.data(), body_bytes.size());
  auto sig = file.CreateVector(signature.data(), signature.size());
  file.Finish(wire::CreateOemBatchFile(file, body_vector, sig), wire::OemBatchFileIdentifier());

  if (secrets) {
    secrets_out.close();
    if (!secrets_out) return UnavailableError(secrets->string() + ": write failed");
  }
  std::filesystem::path temp = out;
  temp += ".tmp";
  {
    std::ofstream o(temp, std::ios::binary | std::ios::trunc);
    o.write(reinterpret_cast<const char*>(file.GetBufferPointer()), file.GetSize());
    o.close();
    if (!o) return UnavailableError(out.string() + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(temp, out, ec);
  if (ec) return UnavailableError(out.string() + ": " + ec.message());
  return batch_id;
}

StatusOr<BatchFileView> ParseBatchFile(std::span<const uint8_t> bytes) {
  if (bytes.size() < 8 ||
      !flatbuffers::BufferHasIdentifier(bytes.data(), wire::OemBatchFileIdentifier())) {
    return InvalidArgumentError("not a Keyline batch file (no KLB1 identifier)");
  }
  schemas::DecodeLimits limits;
  limits.max_bytes = kMaxBatchFileBytes;
  limits.max_tables = 10'000'000;
  ASSIGN_OR_RETURN(const wire::OemBatchFile* file,
                   schemas::DecodeVerified<wire::OemBatchFile>(bytes, "batch file", limits));
  BatchFileView view;
  view.signed_bytes = schemas::Bytes(file->body());
  if (view.signed_bytes.empty()) return InvalidArgumentError("batch file: body is missing");
  std::span<const uint8_t> signature = schemas::Bytes(file->signature());
  if (signature.size() != view.signature.size()) {
    return InvalidArgumentError("batch file: signature is " + std::to_string(signature.size()) +
                                " bytes, expected 64");
  }
  std::copy(signature.begin(), signature.end(), view.signature.begin());
  // Verified as part of the file (nested_flatbuffer), but check on its own to be sure.
  ASSIGN_OR_RETURN(view.body, schemas::DecodeVerified<wire::OemBatchBody>(view.signed_bytes,
                                                                          "batch file body", limits));
  const wire::OemBatchBody* body = view.body;
  if (body->format_version() != kBatchFormatVersion) {
    return InvalidArgumentError("batch file: format version " + std::to_string(body->format_version()) +
                                " is not supported (this KMS reads version 1)");
  }
  view.batch_id = std::string(schemas::Text(body->batch_id()));
  view.oem = std::string(schemas::Text(body->oem()));
  view.product = std::string(schemas::Text(body->product()));
  RETURN_IF_ERROR(broker::ValidateName("batch file OEM", view.oem));
  RETURN_IF_ERROR(broker::ValidateName("batch file product", view.product));
  RETURN_IF_ERROR(ValidateBatchId(view.batch_id, view.oem).WithContext("batch file"));
  auto slots = schemas::Bytes(body->slots());
  view.slots.assign(slots.begin(), slots.end());
  if (view.slots.empty()) return InvalidArgumentError("batch file: no slots");
  view.key_set_count = body->key_set_count();
  if (view.key_set_count == 0) return InvalidArgumentError("batch file: holds no key sets");
  if (body->chunks() == nullptr || body->chunks()->size() == 0) {
    return InvalidArgumentError("batch file: no chunks");
  }
  uint64_t index = 0;
  std::string expected;
  for (flatbuffers::uoffset_t c = 0; c < body->chunks()->size(); ++c) {
    const wire::OemBatchChunk* chunk = body->chunks()->Get(c);
    if (chunk == nullptr || chunk->key_set_ids() == nullptr || chunk->key_set_ids()->size() == 0 ||
        schemas::Bytes(chunk->wrapped()).empty()) {
      return InvalidArgumentError("batch file: chunk " + std::to_string(c) + " is empty");
    }
    if (chunk->key_set_ids()->size() * view.slots.size() > kMaxKeysPerChunk) {
      return InvalidArgumentError("batch file: chunk " + std::to_string(c) + " holds more than 4096 keys");
    }
    for (const auto* id : *chunk->key_set_ids()) {
      expected = view.batch_id + "." + std::to_string(index);
      if (id == nullptr || id->string_view() != expected) {
        return InvalidArgumentError("batch file: key set " + std::to_string(index) + " is named '" +
                                    std::string(id ? id->string_view().substr(0, 80) : "") +
                                    "', expected '" + expected + "'");
      }
      ++index;
    }
    view.chunk_sizes.push_back(chunk->key_set_ids()->size());
  }
  if (index != view.key_set_count) {
    return InvalidArgumentError("batch file: says it holds " + std::to_string(view.key_set_count) +
                                " key sets but its chunks hold " + std::to_string(index));
  }
  return view;
}

}  // namespace keyline::kms
