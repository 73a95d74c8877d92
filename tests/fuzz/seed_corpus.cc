// Writes the seed corpus of every fuzz target: valid messages of each root type, made by the
// project's own encoders (schemas::BuildEnvelope, BuildInjectionRecord, the schema tests'
// Sample<T>() builders, injector::EncodeEolReply, kms::WriteOemBatch), prefixed with the
// target's selector byte where the target decodes several root types.
//
//   keyline-fuzz-seeds OUT_DIR      writes OUT_DIR/<target>/<name>, replacing what was there
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "keyline/injector/provision_outcome.h"
#include "keyline/kms/batch_file.h"
#include "keyline/schemas/build.h"
#include "keyline/wire/ecu_link_generated.h"
#include "keyline/wire/injector_store_generated.h"
#include "keyline/wire/kms_store_generated.h"
#include "keyline/wire/link_generated.h"
#include "samples.h"
#include "seed_writer.h"

namespace keyline::fuzz {
namespace {

namespace fs = std::filesystem;
using schemas::testing::Counting;
using schemas::testing::Sample;

void Messages(SeedWriter& out) {
  schemas::testing::ForEachMessageTable([&]<typename T>() {
    const std::string name(schemas::MessageTraits<T>::kName);
    const Bytes payload = Sample<T>();
    SeedWriter::Require(schemas::VerifyPayload(schemas::MessageTraits<T>::kType, payload),
                        "fuzz_messages", name);
    out.Write("fuzz_messages", name, static_cast<uint8_t>(schemas::MessageTraits<T>::kType), payload);
    schemas::EnvelopeHeader header;
    header.message_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    header.stream = "records";
    header.sequence = 42;
    header.sender = "plant-a";
    header.created_at_us = 1'700'000'000'000'000;
    const Bytes envelope = schemas::BuildEnvelope(schemas::HeaderFor<T>(header), payload);
    SeedWriter::Require(schemas::DecodeEnvelope(envelope).status(), "fuzz_envelope", name);
    out.Write("fuzz_envelope", name, envelope);
  });
  const Bytes record = Sample<wire::InjectionRecord>();
  SeedWriter::Require(schemas::DecodeInjectionRecord(record).status(), "fuzz_records",
                      "InjectionRecord");
  out.Write("fuzz_records", "InjectionRecord", record);
}

// Link frames as broker/src/link.cc builds them: envelopes 8-byte aligned inside Data.
void Link(SeedWriter& out) {
  schemas::EnvelopeHeader header;
  header.message_id = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
  header.stream = "stock";
  header.sequence = 7;
  header.sender = "kms";
  const Bytes envelope =
      schemas::BuildEnvelope(schemas::HeaderFor<wire::StockRequest>(header),
                             Sample<wire::StockRequest>());
  auto data = [&](flatbuffers::FlatBufferBuilder& fbb) {
    fbb.ForceVectorAlignment(envelope.size(), 1, 8);
    return wire::CreateData(fbb, fbb.CreateVector(envelope));
  };
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::StreamPosition>> positions = {
        wire::CreateStreamPosition(fbb, fbb.CreateString("stock"), 6),
        wire::CreateStreamPosition(fbb, fbb.CreateString("records"), 1200)};
    auto hello = wire::CreateHello(fbb, 1, false, fbb.CreateVector(positions), 3, 1 << 20);
    fbb.Finish(wire::CreateLinkFrame(fbb, wire::LinkBody::Hello, hello.Union()));
    out.WriteVerified<wire::LinkFrame>("fuzz_link", "Hello", 0, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto d = data(fbb);
    fbb.Finish(wire::CreateLinkFrame(fbb, wire::LinkBody::Data, d.Union()));
    out.WriteVerified<wire::LinkFrame>("fuzz_link", "Data", 0, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::Data>> items = {data(fbb), data(fbb)};
    auto batch = wire::CreateDataBatch(fbb, fbb.CreateVector(items));
    fbb.Finish(wire::CreateLinkFrame(fbb, wire::LinkBody::DataBatch, batch.Union()));
    out.WriteVerified<wire::LinkFrame>("fuzz_link", "DataBatch", 0, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto ack = wire::CreateAck(fbb, fbb.CreateString("stock"), 7);
    fbb.Finish(wire::CreateLinkFrame(fbb, wire::LinkBody::Ack, ack.Union()));
    out.WriteVerified<wire::LinkFrame>("fuzz_link", "Ack", 0, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto heartbeat = wire::CreateHeartbeat(fbb, 1'700'000'000'000'000, 12);
    fbb.Finish(wire::CreateLinkFrame(fbb, wire::LinkBody::Heartbeat, heartbeat.Union()));
    out.WriteVerified<wire::LinkFrame>("fuzz_link", "Heartbeat", 0, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateLinkState(fbb, 1'700'000'000'000'000,
                                     fbb.CreateString("connection refused"), 1'700'000'000'000'001));
    out.WriteVerified<wire::LinkState>("fuzz_link", "LinkState", 1, Finished(fbb));
  }
}

injector::ProvisionOutcome SampleOutcome() {
  injector::ProvisionOutcome o;
  o.outcome = injector::kOutcomeProvisioned;
  o.message = "2 slots loaded and proved";
  o.product = "acme-bcm";
  for (size_t i = 0; i < o.ecu_uid.size(); ++i) o.ecu_uid[i] = static_cast<uint8_t>(i + 1);
  o.station = "eol-1";
  o.plant = "plant-a";
  o.key_set_id = "acme-1.0";
  o.package_id = "pkg-17";
  o.slots = {{1, injector::EcuError::kNone, 1}, {4, injector::EcuError::kNone, 2}};
  o.report = injector::kReportQueued;
  return o;
}

void Injector(SeedWriter& out) {
  const Bytes uid = Counting(15, 1);
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateEolRequest(fbb, wire::EolOp::PROVISION, fbb.CreateVector(uid),
                                      fbb.CreateString("acme-bcm")));
    out.WriteVerified<wire::EolRequest>("fuzz_eol", "EolRequest", 0, Finished(fbb));
  }
  const Bytes reply = injector::EncodeEolReply(SampleOutcome());
  SeedWriter::Require(injector::DecodeEolReply(reply).status(), "fuzz_eol", "EolReply");
  out.Write("fuzz_eol", "EolReply", 1, reply);
  {
    const Bytes package = Sample<wire::KeyPackage>();
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateStoredProvisioning(
        fbb, wire::ProvisioningState::REPORTED, fbb.CreateString("acme-bcm"),
        fbb.CreateVector(uid), fbb.CreateVector(package), 1, fbb.CreateVector(reply), 5,
        1'700'000'000'000'000));
    out.WriteVerified<wire::StoredProvisioning>("fuzz_eol", "StoredProvisioning", 2, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateEcuRequest(fbb, fbb.CreateVector(uid), wire::EcuOp::LOAD_KEY,
                                      fbb.CreateVector(Counting(16, 0x10)),
                                      fbb.CreateVector(Counting(32, 0x20)),
                                      fbb.CreateVector(Counting(16, 0x40))));
    out.WriteVerified<wire::EcuRequest>("fuzz_ecu_link", "EcuRequest-LOAD_KEY", 0, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateEcuRequest(fbb, fbb.CreateVector(uid), wire::EcuOp::GET_INFO));
    out.WriteVerified<wire::EcuRequest>("fuzz_ecu_link", "EcuRequest-GET_INFO", 0, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateEcuReply(fbb, fbb.CreateVector(uid), wire::EcuStatus::OK,
                                    fbb.CreateVector(Counting(32, 0x50)),
                                    fbb.CreateVector(Counting(16, 0x70))));
    out.WriteVerified<wire::EcuReply>("fuzz_ecu_link", "EcuReply-LOAD_KEY", 1, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::EcuSlotInfo>> slots = {
        wire::CreateEcuSlotInfo(fbb, 1, true, 3, 0), wire::CreateEcuSlotInfo(fbb, 4, false, 0, 2)};
    fbb.Finish(wire::CreateEcuReply(fbb, fbb.CreateVector(uid), wire::EcuStatus::OK, 0, 0,
                                    fbb.CreateVector(slots)));
    out.WriteVerified<wire::EcuReply>("fuzz_ecu_link", "EcuReply-GET_INFO", 1, Finished(fbb));
  }
}

void KmsStore(SeedWriter& out) {
  const std::string target = "fuzz_kms_store";
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateKmsOem(fbb, fbb.CreateString("acme"), fbb.CreateVector(Counting(32, 1)), 5));
    out.WriteVerified<wire::KmsOem>(target, "KmsOem", 0, Finished(fbb));
  }
  {
    // Product: the one inside the admin sample's ProductAdd, as the KMS stores it.
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::SlotLayout>> slots = {
        wire::CreateSlotLayout(fbb, 1, 1, 1, 0), wire::CreateSlotLayout(fbb, 4, 1, 2, 0x02)};
    fbb.Finish(wire::CreateProduct(fbb, fbb.CreateString("acme-bcm"), fbb.CreateString("acme"),
                                   fbb.CreateVector(slots), wire::SheFlagLayout::SHE_CLASSIC,
                                   fbb.CreateString("acme-transport"), 100, 500, 60));
    out.WriteVerified<wire::Product>(target, "Product", 1, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::Station>> stations = {
        wire::CreateStation(fbb, fbb.CreateString("eol-1"), fbb.CreateVector(Counting(32, 9)))};
    fbb.Finish(wire::CreateKmsPlant(fbb, fbb.CreateString("plant-a"), fbb.CreateVector(Counting(32, 1)),
                                    fbb.CreateVector(Counting(32, 2)), fbb.CreateVector(Counting(32, 3)),
                                    4, fbb.CreateVector(stations),
                                    wire::CreateSyncPolicy(fbb, wire::SyncMode::INTERVAL, 60), 7));
    out.WriteVerified<wire::KmsPlant>(target, "KmsPlant", 2, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::StoredSlotKey>> keys = {
        wire::CreateStoredSlotKey(fbb, 1, fbb.CreateVector(Counting(40, 1))),
        wire::CreateStoredSlotKey(fbb, 4, fbb.CreateVector(Counting(40, 2)))};
    fbb.Finish(wire::CreateKmsKeySet(fbb, fbb.CreateString("acme-1.0"), fbb.CreateString("acme"),
                                     fbb.CreateString("acme-bcm"), fbb.CreateString("acme-1"), 1,
                                     wire::KeySetState::INJECTED, fbb.CreateVector(keys),
                                     fbb.CreateString("plant-a"), fbb.CreateString("ship-1"), 2, 3,
                                     fbb.CreateVector(Counting(15, 1)), fbb.CreateString("")));
    out.WriteVerified<wire::KmsKeySet>(target, "KmsKeySet", 3, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateKmsBatch(fbb, fbb.CreateString("acme-1"), fbb.CreateString("acme"),
                                    fbb.CreateString("acme-bcm"), wire::BatchState::IMPORTED, 3, 3,
                                    fbb.CreateString("staged/acme-1.klb"), 1, 2, 3));
    out.WriteVerified<wire::KmsBatch>(target, "KmsBatch", 4, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateAuditEntry(fbb, 9, 10, fbb.CreateString("admin"), fbb.CreateString("oem add"),
                                      fbb.CreateString("acme"), fbb.CreateString("{}"),
                                      fbb.CreateVector(Counting(32, 1)), fbb.CreateVector(Counting(32, 2))));
    out.WriteVerified<wire::AuditEntry>(target, "AuditEntry", 5, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<std::string> plants = {"plant-a", "plant-b"};
    std::vector<std::string> answered = {"plant-a"};
    std::vector<uint64_t> watermarks = {17};
    fbb.Finish(wire::CreateKmsVerification(fbb, fbb.CreateString("v-1"), fbb.CreateString("acme"), 5,
                                           fbb.CreateVectorOfStrings(plants),
                                           fbb.CreateVectorOfStrings(answered),
                                           fbb.CreateVector(watermarks)));
    out.WriteVerified<wire::KmsVerification>(target, "KmsVerification", 6, Finished(fbb));
  }
  out.WriteVerified<wire::PlantStatus>(target, "PlantStatus", 7, Sample<wire::PlantStatus>());
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateKmsOemCaDirect(fbb, "acme", "-----BEGIN CERTIFICATE-----\nroot\n", 5));
    out.WriteVerified<wire::KmsOemCa>(target, "KmsOemCa", 8, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    const std::vector<uint8_t> challenge = Counting(32, 4);
    fbb.Finish(wire::CreateKmsPlantCaDirect(fbb, "plant-a", "acme", 1, wire::PlantCaState::ACTIVE, "plant-a/acme/1",
                                            "plant-ca/acme/1", "Acme", "plant-a", "acme issuing CA plant-a 1",
                                            &challenge, "-----BEGIN CERTIFICATE REQUEST-----\n",
                                            "-----BEGIN CERTIFICATE-----\n", 5, 6, ""));
    out.WriteVerified<wire::KmsPlantCa>(target, "KmsPlantCa", 9, Finished(fbb));
  }
}

// Deterministic stand-in for an OEM's key custody: what WriteOemBatch needs (random bytes,
// key import, sealing, a signature), no cryptography. The parser never opens the seal.
class SeedCustody final : public hsm::KeyCustody {
 public:
  hsm::CustodyInfo Info() const override { return {"seed", "fuzz seeds", {}}; }
  StatusOr<hsm::KeyHandle> GenerateKey(hsm::KeyKind kind) override { return Next(kind); }
  StatusOr<hsm::KeyHandle> ImportKeyFromHex(hsm::KeyKind kind, std::string_view,
                                            std::string_view) override {
    return Next(kind);
  }
  StatusOr<hsm::KeyHandle> GetOrCreateNamedKey(std::string_view, hsm::KeyKind kind) override {
    return Next(kind);
  }
  Status DestroyKey(hsm::KeyHandle) override { return Status::Ok(); }
  StatusOr<hsm::PublicKey> GetPublicKey(hsm::KeyHandle) override { return Unsupported(); }
  StatusOr<std::vector<uint8_t>> GetPublicKeyInfo(hsm::KeyHandle) override { return Unsupported(); }
  StatusOr<std::array<uint8_t, 3>> KeyCheckValue(hsm::KeyHandle) override { return Unsupported(); }
  StatusOr<hsm::WrappedKey> WrapForStorage(hsm::KeyHandle, std::string_view) override {
    return Unsupported();
  }
  StatusOr<hsm::KeyHandle> UnwrapFromStorage(const hsm::WrappedKey&, std::string_view) override {
    return Unsupported();
  }
  StatusOr<hsm::WrappedKeySet> WrapForPeer(std::span<const hsm::KeyHandle> keys,
                                           const hsm::PublicKey&, std::string_view) override {
    return hsm::WrappedKeySet{Counting(48 + 16 * keys.size(), 0xa0)};
  }
  StatusOr<std::vector<hsm::KeyHandle>> UnwrapFromPeer(hsm::KeyHandle, const hsm::WrappedKeySet&,
                                                       std::string_view) override {
    return Unsupported();
  }
  StatusOr<hsm::SheLoadMessages> ComputeSheLoad(const hsm::SheLoadRequest&) override {
    return Unsupported();
  }
  StatusOr<hsm::SheProof> ComputeSheProof(hsm::KeyHandle, const hsm::SheProofFields&) override {
    return Unsupported();
  }
  StatusOr<hsm::SheProofCheck> CheckSheProof(hsm::KeyHandle, const hsm::SheProof&) override {
    return Unsupported();
  }
  StatusOr<hsm::Signature> Sign(hsm::KeyHandle, std::span<const uint8_t>) override {
    hsm::Signature signature;
    signature.fill(0x5a);
    return signature;
  }
  StatusOr<std::vector<uint8_t>> SignEcdsaSha256(hsm::KeyHandle, std::span<const uint8_t>) override {
    return Unsupported();
  }
  StatusOr<std::vector<uint8_t>> Random(size_t size) override {
    std::vector<uint8_t> bytes(size);
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(counter_++);
    return bytes;
  }
  Status BenchmarkAesBlocks(hsm::KeyHandle, size_t, size_t) override { return Unsupported(); }

 private:
  static Status Unsupported() { return UnimplementedError("not in the seed custody"); }
  hsm::KeyHandle Next(hsm::KeyKind kind) { return {++handles_, 1, kind}; }
  uint64_t handles_ = 0;
  uint32_t counter_ = 0;
};

void BatchFiles(const fs::path& root) {
  SeedCustody custody;
  fs::create_directories(root / "fuzz_batch_file");
  struct Batch {
    const char* name;
    std::vector<uint8_t> slots;
    uint64_t count;
  };
  for (const Batch& batch : {Batch{"three-sets-two-slots.klb", {1, 4}, 3},
                             Batch{"one-set-one-slot.klb", {1}, 1}}) {
    kms::OemBatchSpec spec;
    spec.oem = "acme";
    spec.product = "acme-bcm";
    spec.batch_id = "acme-seed";
    spec.slots = batch.slots;
    spec.count = batch.count;
    spec.kms_import_key = {hsm::KeyKind::kX25519, {}};
    auto written = kms::WriteOemBatch(custody, hsm::KeyHandle{1, 1, hsm::KeyKind::kEd25519}, spec,
                                      root / "fuzz_batch_file" / batch.name, std::nullopt);
    SeedWriter::Require(written.status(), "fuzz_batch_file", batch.name);
    auto bytes = kms::ReadFileBytes(root / "fuzz_batch_file" / batch.name, kms::kMaxBatchFileBytes);
    SeedWriter::Require(bytes.status(), "fuzz_batch_file", batch.name);
    SeedWriter::Require(kms::ParseBatchFile(*bytes).status(), "fuzz_batch_file", batch.name);
  }
}

}  // namespace
}  // namespace keyline::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: keyline-fuzz-seeds OUT_DIR\n");
    return 2;
  }
  const std::filesystem::path root = argv[1];
  std::filesystem::remove_all(root);
  keyline::fuzz::SeedWriter out(root);
  keyline::fuzz::Messages(out);
  keyline::fuzz::Link(out);
  keyline::fuzz::Injector(out);
  keyline::fuzz::KmsStore(out);
  keyline::fuzz::WritePksStoreSeeds(out);
  keyline::fuzz::BatchFiles(root);
  return 0;
}
