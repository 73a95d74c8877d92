#include "verification.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <mutex>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include "json_text.h"
#include "keyline/common/hex.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/kms_store_generated.h"
#include "store_layout.h"

namespace keyline::kms {
namespace {

std::mutex g_mu;  // guards the in-memory verifications below (one KMS per process)

std::string Serialize(const VerificationView& v, const std::map<std::string, uint64_t>& watermarks) {
  flatbuffers::FlatBufferBuilder fbb(512);
  std::vector<flatbuffers::Offset<flatbuffers::String>> plants;
  for (const auto& p : v.plants) plants.push_back(fbb.CreateString(p));
  std::vector<flatbuffers::Offset<flatbuffers::String>> answered;
  std::vector<uint64_t> marks;
  for (const auto& [plant, mark] : watermarks) {
    answered.push_back(fbb.CreateString(plant));
    marks.push_back(mark);
  }
  fbb.Finish(wire::CreateKmsVerification(fbb, fbb.CreateString(v.id), fbb.CreateString(v.oem),
                                         v.requested_at_us, fbb.CreateVector(plants),
                                         fbb.CreateVector(answered), fbb.CreateVector(marks)));
  return std::string(FinishedText(fbb));
}

struct Entry {
  VerificationView view;
  std::map<std::string, uint64_t> watermarks;
};
std::map<std::string, Entry> g_entries;

void AppendHex(std::string& out, std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
}

}  // namespace

Status Verifications::Load() {
  std::lock_guard lock(g_mu);
  g_entries.clear();
  std::unique_ptr<rocksdb::Iterator> it(
      context_->database->db()->NewIterator(rocksdb::ReadOptions(), context_->Family(layout::kVerify)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string copy = it->value().ToString();  // aligned for FlatBuffers; blocks are not
    ASSIGN_OR_RETURN(const wire::KmsVerification* v,
                     schemas::DecodeVerified<wire::KmsVerification>(AsBytes(copy),
                                                                   "verification record"));
    Entry entry;
    entry.view.id = std::string(schemas::Text(v->verification_id()));
    entry.view.oem = std::string(schemas::Text(v->oem()));
    entry.view.requested_at_us = v->requested_at_us();
    if (v->plants()) for (const auto* p : *v->plants()) entry.view.plants.push_back(p->str());
    if (v->answered() && v->watermarks()) {
      for (flatbuffers::uoffset_t i = 0; i < v->answered()->size() && i < v->watermarks()->size(); ++i) {
        entry.watermarks[v->answered()->Get(i)->str()] = v->watermarks()->Get(i);
      }
    }
    g_entries[entry.view.id] = entry;
  }
  ASSIGN_OR_RETURN(auto next, context_->Get(layout::kMeta, "next_verification"));
  if (next) next_id_ = layout::ReadU64(*next);
  std::error_code ec;
  std::filesystem::create_directories(exports_dir_, ec);
  if (ec) return UnavailableError(exports_dir_.string() + ": " + ec.message());
  return Status::Ok();
}

static VerificationView WithPending(const Entry& entry) {
  VerificationView view = entry.view;
  view.pending.clear();
  for (const auto& p : view.plants) {
    if (!entry.watermarks.count(p)) view.pending.push_back(p);
  }
  return view;
}

StatusOr<VerificationView> Verifications::Open(const std::string& oem, const std::string& actor) {
  if (!catalog_->Oem(oem)) return NotFoundError("OEM " + oem + " is not registered");
  // Plants concerned: those that were shipped key sets of the OEM's products.
  std::vector<std::string> plants;
  std::unique_ptr<rocksdb::Iterator> it(
      context_->database->db()->NewIterator(rocksdb::ReadOptions(), context_->Family(layout::kShipped)));
  for (const PlantSpec& plant : catalog_->Plants()) {
    for (const ProductSpec& product : catalog_->Products()) {
      if (product.oem != oem) continue;
      std::string prefix = plant.plant + std::string(1, '\0') + product.name + std::string(1, '\0');
      it->Seek(prefix);
      if (it->Valid() && it->key().starts_with(prefix)) {
        plants.push_back(plant.plant);
        break;
      }
    }
  }
  Entry entry;
  entry.view.oem = oem;
  entry.view.requested_at_us = NowUs();
  entry.view.plants = plants;
  uint64_t id_number = next_id_;
  entry.view.id = "v" + std::to_string(id_number);
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    flatbuffers::FlatBufferBuilder fbb(128);
    for (const std::string& plant : plants) {
      fbb.Clear();
      fbb.Finish(wire::CreateVerificationRequest(fbb, fbb.CreateString(entry.view.id), fbb.CreateString(oem)));
      RETURN_IF_ERROR(write.Send({plant, "control"}, wire::MessageType::VerificationRequest,
                                 std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()))
                          .status());
    }
    write.batch().Put(context_->Family(layout::kVerify), entry.view.id, Serialize(entry.view, {}));
    write.batch().Put(context_->Family(layout::kMeta), "next_verification", layout::U64(id_number + 1));
    std::string list;
    for (const auto& p : plants) list += (list.empty() ? "" : ",") + JsonQuote(p);
    audit_->Append(write, actor, "verification.request", entry.view.id,
                   "{\"oem\":" + JsonQuote(oem) + ",\"plants\":[" + list + "]}");
    return Status::Ok();
  });
  RETURN_IF_ERROR(committed);
  next_id_ = id_number + 1;
  std::lock_guard lock(g_mu);
  g_entries[entry.view.id] = entry;
  return WithPending(entry);
}

StatusOr<VerificationView> Verifications::Get(const std::string& id) const {
  std::lock_guard lock(g_mu);
  auto it = g_entries.find(id);
  if (it == g_entries.end()) return NotFoundError("verification " + id.substr(0, 64) + " does not exist");
  return WithPending(it->second);
}

std::vector<VerificationView> Verifications::List() const {
  std::lock_guard lock(g_mu);
  std::vector<VerificationView> out;
  for (const auto& [id, entry] : g_entries) out.push_back(WithPending(entry));
  return out;
}

Status Verifications::ApplyWatermark(const std::string& plant, const std::string& barrier_id,
                                     uint64_t last_record_sequence, broker::WriteContext& write) {
  std::lock_guard lock(g_mu);
  auto it = g_entries.find(barrier_id);
  if (it == g_entries.end()) {
    return NotFoundError("watermark from " + plant + " for unknown verification " + barrier_id.substr(0, 64));
  }
  Entry& entry = it->second;
  if (std::find(entry.view.plants.begin(), entry.view.plants.end(), plant) == entry.view.plants.end()) {
    return PermissionDeniedError("watermark from " + plant + " for verification " + barrier_id +
                                 ", which did not ask that plant");
  }
  const uint64_t applied = records_->AppliedThrough(plant);
  if (applied < last_record_sequence) {
    // Records before the watermark were refused (dead letters): the file would miss them.
    spdlog::warn("kms: {} says its records reach {} for verification {}, but only {} were applied",
                 plant, last_record_sequence, barrier_id, applied);
  }
  entry.watermarks[plant] = last_record_sequence;
  write.batch().Put(context_->Family(layout::kVerify), barrier_id, Serialize(entry.view, entry.watermarks));
  audit_->Append(write, plant, "verification.watermark", barrier_id,
                 "{\"last_record_sequence\":" + std::to_string(last_record_sequence) + "}");
  return Status::Ok();
}

StatusOr<ExportResult> Verifications::WriteExport(const std::string& oem, const std::filesystem::path& out) {
  ExportResult result;
  result.file = out;
  result.signature = out;
  result.signature += ".sig";
  std::filesystem::path temp = out;
  temp += ".tmp";
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(temp.c_str(), "wb"), &std::fclose);
  if (!file) return UnavailableError(temp.string() + ": cannot write");
  std::vector<char> buffer(1 << 20);
  std::setvbuf(file.get(), buffer.data(), _IOFBF, buffer.size());

  std::map<std::string, std::string> product_names;  // interned
  const std::string prefix = layout::InjectedPrefix(oem);
  std::unique_ptr<rocksdb::Iterator> it(
      context_->database->db()->NewIterator(rocksdb::ReadOptions(), context_->Family(layout::kRecords)));
  std::unique_ptr<rocksdb::Iterator> records(
      context_->database->db()->NewIterator(rocksdb::ReadOptions(), context_->Family(layout::kRecords)));
  records->Seek("r/");
  std::string line;
  line.reserve(512);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view rest(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    size_t zero = rest.find('\0');
    if (zero == std::string_view::npos || rest.size() != zero + 9) continue;
    std::string plant(rest.substr(0, zero));
    uint64_t sequence = layout::ReadU64(rest.substr(zero + 1));
    const std::string record_key = layout::RecordKey(plant, sequence);
    // Records are in the same order as the injected index: step forward, seek only on a jump.
    const rocksdb::Slice target(record_key);
    for (int steps = 0; records->Valid() && records->key().compare(target) < 0 && steps < 8; ++steps) {
      records->Next();
    }
    if (!records->Valid() || records->key().compare(target) < 0) records->Seek(target);
    if (!records->Valid() || records->key() != target) {
      return DataLossError("injected record " + plant + "/" + std::to_string(sequence) + " is missing");
    }
    // Records were verified when they arrived; decode again: it is the one safe way to read.
    std::string bytes = records->value().ToString();
    ASSIGN_OR_RETURN(schemas::VerifiedRecord record, schemas::DecodeInjectionRecord(AsBytes(bytes)));
    const wire::InjectionRecordBody* body = record.body;
    std::string common;
    common += "{\"ecu_uid\":\"";
    AppendHex(common, schemas::Bytes(body->ecu_uid()));
    common += "\",\"product\":" + JsonQuote(schemas::Text(body->product()));
    common += ",\"plant\":" + JsonQuote(plant);
    common += ",\"station\":" + JsonQuote(schemas::Text(body->station()));
    common += ",\"key_set_id\":" + JsonQuote(schemas::Text(body->key_set_id()));
    std::string tail = ",\"injected_at\":\"" + Rfc3339(body->injected_at_us()) + "\",\"record_sig\":\"";
    AppendHex(tail, record.signature);
    tail += "\"}\n";
    ++result.records;
    if (body->slots() == nullptr) continue;
    for (const auto* slot : *body->slots()) {
      line = common;
      line += ",\"slot\":" + std::to_string(slot->slot());
      line += ",\"auth_slot\":" + std::to_string(slot->auth_slot());
      line += ",\"counter\":" + std::to_string(slot->counter());
      line += ",\"flags\":" + std::to_string(slot->flags());
      line += ",\"m4\":\"";
      AppendHex(line, schemas::Bytes(slot->m4()));
      line += "\",\"m5\":\"";
      AppendHex(line, schemas::Bytes(slot->m5()));
      line += "\"";
      line += tail;
      std::fwrite(line.data(), 1, line.size(), file.get());
      result.bytes += line.size();
      ++result.lines;
    }
    // The ECU's certificate (docs/certificates.md): the OEM checks its chain, UID, validity and
    // the ECU's confirmation. An INJECTED record with a certificate always holds a confirmation.
    if (const wire::RecordCertificate* c = body->certificate()) {
      line = common;
      line += ",\"slot\":" + JsonQuote(schemas::Text(c->slot()));
      line += ",\"certificate\":" + JsonQuote(schemas::Text(c->certificate()));
      line += ",\"chain\":" + JsonQuote(schemas::Text(c->chain()));
      line += ",\"confirm_challenge\":\"";
      AppendHex(line, schemas::Bytes(c->confirm_challenge()));
      line += "\",\"confirmation\":\"";
      AppendHex(line, schemas::Bytes(c->confirmation()));
      line += "\"";
      line += tail;
      std::fwrite(line.data(), 1, line.size(), file.get());
      result.bytes += line.size();
      ++result.lines;
      ++result.certificates;
    }
  }
  if (!it->status().ok()) return UnavailableError("reading records: " + it->status().ToString());
  if (std::fflush(file.get()) != 0 || fsync(fileno(file.get())) != 0) {
    return UnavailableError(temp.string() + ": write failed");
  }
  file.reset();

  // Sign exactly the bytes written.
  int fd = ::open(temp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return UnavailableError(temp.string() + ": cannot reopen");
  hsm::Signature signature{};
  Status signed_ok;
  if (result.bytes == 0) {
    auto sig = context_->custody->Sign(context_->signing_key, std::span<const uint8_t>());
    if (sig.ok()) signature = *sig; else signed_ok = sig.status();
  } else {
    void* map = mmap(nullptr, result.bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      signed_ok = UnavailableError(temp.string() + ": cannot map for signing");
    } else {
      auto sig = context_->custody->Sign(
          context_->signing_key, std::span<const uint8_t>(static_cast<const uint8_t*>(map), result.bytes));
      munmap(map, result.bytes);
      if (sig.ok()) signature = *sig; else signed_ok = sig.status();
    }
  }
  ::close(fd);
  RETURN_IF_ERROR(signed_ok);
  std::filesystem::path sig_temp = result.signature;
  sig_temp += ".tmp";
  {
    std::unique_ptr<FILE, int (*)(FILE*)> sig(std::fopen(sig_temp.c_str(), "wb"), &std::fclose);
    if (!sig) return UnavailableError(sig_temp.string() + ": cannot write");
    std::string text = ToHex(signature) + "\n";
    std::fwrite(text.data(), 1, text.size(), sig.get());
    if (std::fflush(sig.get()) != 0) return UnavailableError(sig_temp.string() + ": write failed");
  }
  std::error_code ec;
  std::filesystem::rename(temp, out, ec);
  if (!ec) std::filesystem::rename(sig_temp, result.signature, ec);
  if (ec) return UnavailableError(out.string() + ": " + ec.message());
  return result;
}

StatusOr<ExportResult> Verifications::Export(const std::string& id, const std::string& actor) {
  ASSIGN_OR_RETURN(VerificationView view, Get(id));
  if (!view.pending.empty()) {
    std::string list;
    for (const auto& p : view.pending) list += (list.empty() ? "" : ", ") + p;
    return FailedPreconditionError("verification " + id + " still waits for: " + list);
  }
  std::filesystem::path out = exports_dir_ / (id + ".jsonl");
  std::filesystem::path sig = out;
  sig += ".sig";
  if (std::filesystem::exists(out) && std::filesystem::exists(sig)) {
    ExportResult existing;
    existing.file = out;
    existing.signature = sig;
    existing.bytes = std::filesystem::file_size(out);
    return existing;
  }
  ASSIGN_OR_RETURN(ExportResult result, WriteExport(view.oem, out));
  Status committed = context_->store->Commit([&](broker::WriteContext& write) -> Status {
    audit_->Append(write, actor, "verification.export", id,
                   "{\"oem\":" + JsonQuote(view.oem) + ",\"lines\":" + std::to_string(result.lines) + "}");
    return Status::Ok();
  });
  RETURN_IF_ERROR(committed);
  return result;
}

}  // namespace keyline::kms
