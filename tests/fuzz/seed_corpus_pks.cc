// Seeds for fuzz_pks_store: the values a PKS keeps, as its stores build them.
#include "keyline/schemas/certificate_slot.h"
#include "keyline/wire/pks_store_generated.h"
#include "samples.h"
#include "seed_writer.h"

namespace keyline::fuzz {

void WritePksStoreSeeds(SeedWriter& out) {
  using schemas::testing::Counting;
  const std::string target = "fuzz_pks_store";
  {
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::SlotLayout>> layout = {
        wire::CreateSlotLayout(fbb, 1, 1, 1, 0), wire::CreateSlotLayout(fbb, 4, 1, 2, 0x02)};
    std::vector<flatbuffers::Offset<wire::ExpectedProof>> proofs = {
        wire::CreateExpectedProof(fbb, 1, fbb.CreateVector(Counting(32, 1)),
                                  fbb.CreateVector(Counting(16, 2))),
        wire::CreateExpectedProof(fbb, 4, fbb.CreateVector(Counting(32, 3)),
                                  fbb.CreateVector(Counting(16, 4)))};
    schemas::CertificateSlotSpec slot;
    slot.name = "identity";
    slot.common_name = "{product} {uid}";
    slot.validity_days = 365;
    slot.extended_key_usage = {"clientAuth"};
    auto certificate = wire::CreateStoredCertificate(
        fbb, schemas::CreateCertificateSlot(fbb, slot), fbb.CreateVector(Counting(32, 6)),
        fbb.CreateString("-----BEGIN CERTIFICATE-----\necu\n"),
        fbb.CreateString("-----BEGIN CERTIFICATE-----\nplant\n"), fbb.CreateVector(Counting(32, 7)), 15,
        fbb.CreateString("plant-ca/acme/1"));
    auto reservation = wire::CreateStoredReservation(
        fbb, fbb.CreateString("pkg-1"), fbb.CreateString("req-1"), fbb.CreateString("eol-1"),
        fbb.CreateVector(Counting(15, 1)), 10, 20, fbb.CreateVector(layout),
        fbb.CreateVector(proofs), certificate);
    const std::vector<uint8_t> slots = {1, 4};
    fbb.Finish(wire::CreateStoredKeySet(
        fbb, fbb.CreateString("acme-1.0"), fbb.CreateString("acme-bcm"), fbb.CreateString("acme-1"),
        fbb.CreateVector(Counting(80, 5)), fbb.CreateVector(slots), wire::KeySetState::RESERVED, 3,
        4, reservation, 0, fbb.CreateString(""), 0));
    out.WriteVerified<wire::StoredKeySet>(target, "StoredKeySet", 0, Finished(fbb));
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(wire::CreateStoredStockRequest(fbb, fbb.CreateString("req-7"),
                                              fbb.CreateString("acme-bcm"), 100, 5));
    out.WriteVerified<wire::StoredStockRequest>(target, "StoredStockRequest", 1, Finished(fbb));
  }
  out.WriteVerified<wire::ConfigUpdate>(target, "ConfigUpdate", 2, schemas::testing::Sample<wire::ConfigUpdate>());
}

}  // namespace keyline::fuzz
