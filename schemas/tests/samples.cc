#include "samples.h"

#include "keyline/schemas/build.h"
#include "keyline/schemas/fields.h"

namespace keyline::schemas::testing {
namespace {

std::vector<uint8_t> Finished(flatbuffers::FlatBufferBuilder& fbb) {
  std::span<const uint8_t> bytes = FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

flatbuffers::Offset<flatbuffers::Vector<uint8_t>> CountingBytes(flatbuffers::FlatBufferBuilder& fbb,
                                                                size_t n, uint8_t first) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(first + i);
  return CreateBytes(fbb, bytes);
}

uint64_t Mix(uint64_t acc, uint64_t v) { return (acc ^ v) * 0x100000001b3ULL; }

uint64_t Sum(const flatbuffers::Vector<uint8_t>* v) {
  uint64_t acc = 0;
  for (uint8_t b : Bytes(v)) acc = Mix(acc, b);
  return acc;
}

uint64_t Sum(const flatbuffers::String* s) {
  uint64_t acc = 0;
  for (char c : Text(s)) acc = Mix(acc, static_cast<uint8_t>(c));
  return acc;
}

uint64_t SumStrings(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  uint64_t acc = 0;
  if (v == nullptr) return acc;
  for (const flatbuffers::String* s : *v) acc = Mix(acc, Sum(s));
  return acc;
}

template <typename Table>
uint64_t SumTables(const flatbuffers::Vector<flatbuffers::Offset<Table>>* v,
                   uint64_t (*read)(const Table&)) {
  uint64_t acc = 0;
  if (v == nullptr) return acc;
  for (const Table* t : *v) acc = Mix(acc, t == nullptr ? 0 : read(*t));
  return acc;
}

}  // namespace

std::vector<uint8_t> Counting(size_t n, uint8_t first) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(first + i);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// kms_pks.fbs

template <>
std::vector<uint8_t> Sample<wire::StockBatch>() {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::WrappedKeySet>> sets;
  for (uint8_t i = 0; i < 3; ++i) {
    const std::vector<uint8_t> slots = {1, 4, static_cast<uint8_t>(5 + i)};
    sets.push_back(
        wire::CreateWrappedKeySet(fbb, fbb.CreateString("ks-acme-000" + std::to_string(i)),
                                  CountingBytes(fbb, 80, 0x10), CreateBytes(fbb, slots)));
  }
  fbb.Finish(wire::CreateStockBatchDirect(fbb, "req-7", "batch-2026-11-25-001", "plant-a",
                                          "acme-bcm-2027", &sets));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::ConfigUpdate>() {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::SlotLayout>> bcm_slots = {
      wire::CreateSlotLayout(fbb, 1, 1, 1, 0x10),
      wire::CreateSlotLayout(fbb, 4, 1, 1, 0x00),
  };
  std::vector<flatbuffers::Offset<wire::SlotLayout>> gw_slots = {
      wire::CreateSlotLayout(fbb, 5, 1, 0x0fffffff, 0x3f),
  };
  std::vector<flatbuffers::Offset<flatbuffers::String>> key_usage = {
      fbb.CreateString("digitalSignature"), fbb.CreateString("keyAgreement")};
  std::vector<flatbuffers::Offset<flatbuffers::String>> extended_key_usage = {
      fbb.CreateString("clientAuth")};
  std::vector<flatbuffers::Offset<wire::Product>> products = {
      wire::CreateProductDirect(fbb, "acme-bcm-2027", "acme", &bcm_slots,
                                wire::SheFlagLayout::SHE_CLASSIC, "tk-acme-1", 100, 500, 120,
                                wire::CreateCertificateSlotDirect(
                                    fbb, "identity", wire::CertificateKeyType::ECDSA_P256, "Acme",
                                    "BCM", "{product} {uid}", 5475, &key_usage, &extended_key_usage)),
      wire::CreateProductDirect(fbb, "zenith-gw-5", "zenith", &gw_slots,
                                wire::SheFlagLayout::SHE_PLUS, "tk-zenith-3", 10, 50, 300),
  };
  std::vector<flatbuffers::Offset<wire::Station>> stations = {
      wire::CreateStation(fbb, fbb.CreateString("line1-eol1"), CountingBytes(fbb, 32, 0xa0)),
      wire::CreateStation(fbb, fbb.CreateString("line2-eol1"), CountingBytes(fbb, 32, 0xc0)),
  };
  auto sync = wire::CreateSyncPolicy(fbb, wire::SyncMode::INTERVAL, 900);
  std::vector<flatbuffers::Offset<wire::IssuingCa>> cas = {
      wire::CreateIssuingCaDirect(fbb, "acme", "plant-ca/acme/1", "-----BEGIN CERTIFICATE-----\nplant\n",
                                  "-----BEGIN CERTIFICATE-----\nroot\n", 250, 1000),
  };
  fbb.Finish(wire::CreateConfigUpdateDirect(fbb, 42, "plant-a", &products, &stations, sync, &cas));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::VerificationRequest>() {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateVerificationRequestDirect(fbb, "barrier-acme-0017", "acme"));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::PlantCaRequest>() {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> challenge = Counting(32, 0x60);
  fbb.Finish(wire::CreatePlantCaRequestDirect(fbb, "plant-a/acme/1", "acme", "plant-ca/acme/1",
                                              "acme", "plant-a", "acme issuing CA plant-a 1",
                                              &challenge));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::PlantCaCsr>() {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreatePlantCaCsrDirect(fbb, "plant-a/acme/1",
                                          "-----BEGIN CERTIFICATE REQUEST-----\ncsr\n"));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::CertificateBudgetRequest>() {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateCertificateBudgetRequestDirect(fbb, "plant-a-0011", "acme", 750));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::CertificateBudgetGrant>() {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateCertificateBudgetGrantDirect(fbb, "plant-a-0011", "plant-a/acme/3", "plant-a",
                                                      "acme", 700));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::StockRequest>() {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateStockRequestDirect(fbb, "req-7", "acme-bcm-2027", 400));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::PlantStatus>() {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::ProductStock>> stock = {
      wire::CreateProductStockDirect(fbb, "acme-bcm-2027", 97, 3, 400, 1500, 2),
      wire::CreateProductStockDirect(fbb, "zenith-gw-5", 40, 0, 0, 10, 0),
  };
  std::vector<flatbuffers::Offset<wire::QueueDepth>> queues = {
      wire::CreateQueueDepthDirect(fbb, "kms", "records", 12, 35),
      wire::CreateQueueDepthDirect(fbb, "line1-eol1", "packages", 0, 0),
  };
  std::vector<flatbuffers::Offset<wire::CertificateBudgetLevel>> budgets = {
      wire::CreateCertificateBudgetLevelDirect(fbb, "acme", 2000, 1400, 5, 600),
  };
  fbb.Finish(wire::CreatePlantStatusDirect(fbb, "plant-a", 42, &stock, &queues, &budgets));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::VerificationWatermark>() {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateVerificationWatermarkDirect(fbb, "barrier-acme-0017", 123456789));
  return Finished(fbb);
}

uint64_t ReadAll(const wire::StockBatch& m) {
  uint64_t acc =
      Mix(Mix(Mix(Sum(m.request_id()), Sum(m.batch_id())), Sum(m.plant())), Sum(m.product()));
  return Mix(acc, SumTables<wire::WrappedKeySet>(m.key_sets(), [](const wire::WrappedKeySet& s) {
               return Mix(Mix(Sum(s.key_set_id()), Sum(s.wrapped())), Sum(s.slots()));
             }));
}

uint64_t ReadAll(const wire::ConfigUpdate& m) {
  uint64_t acc = Mix(Mix(m.version(), Sum(m.plant())), 0);
  acc = Mix(acc, SumTables<wire::Product>(m.products(), [](const wire::Product& p) {
              uint64_t a = Mix(Mix(Sum(p.name()), Sum(p.oem())), Sum(p.transport_key_ref()));
              a = Mix(a, static_cast<uint64_t>(p.flag_layout()));
              a = Mix(Mix(Mix(a, p.min_stock()), p.target_stock()), p.reservation_timeout_s());
              if (const wire::CertificateSlot* c = p.certificate()) {
                a = Mix(Mix(Mix(a, Sum(c->name())), static_cast<uint64_t>(c->key_type())),
                        Sum(c->organization()));
                a = Mix(Mix(Mix(a, Sum(c->organizational_unit())), Sum(c->common_name())),
                        c->validity_days());
                a = Mix(Mix(a, SumStrings(c->key_usage())), SumStrings(c->extended_key_usage()));
              }
              return Mix(a, SumTables<wire::SlotLayout>(p.slots(), [](const wire::SlotLayout& s) {
                           return Mix(Mix(Mix(s.slot(), s.auth_slot()), s.counter()), s.flags());
                         }));
            }));
  acc = Mix(acc, SumTables<wire::Station>(m.stations(), [](const wire::Station& s) {
              return Mix(Sum(s.station_id()), Sum(s.curve_public_key()));
            }));
  if (m.sync() != nullptr) {
    acc = Mix(Mix(acc, static_cast<uint64_t>(m.sync()->mode())), m.sync()->interval_s());
  }
  acc = Mix(acc, SumTables<wire::IssuingCa>(m.issuing_cas(), [](const wire::IssuingCa& c) {
              uint64_t ca = Mix(Mix(Mix(Sum(c.oem()), Sum(c.key_name())), Sum(c.certificate())),
                                Sum(c.oem_ca_certificate()));
              return Mix(Mix(ca, c.budget_min()), c.budget_target());
            }));
  return acc;
}

uint64_t ReadAll(const wire::PlantCaRequest& m) {
  uint64_t acc = Mix(Mix(Sum(m.request_id()), Sum(m.oem())), Sum(m.key_name()));
  acc = Mix(Mix(Mix(acc, Sum(m.organization())), Sum(m.organizational_unit())), Sum(m.common_name()));
  return Mix(acc, Sum(m.challenge()));
}

uint64_t ReadAll(const wire::PlantCaCsr& m) { return Mix(Sum(m.request_id()), Sum(m.csr())); }

uint64_t ReadAll(const wire::CertificateBudgetRequest& m) {
  return Mix(Mix(Sum(m.request_id()), Sum(m.oem())), m.count());
}

uint64_t ReadAll(const wire::CertificateBudgetGrant& m) {
  uint64_t acc = Mix(Mix(Sum(m.request_id()), Sum(m.grant_id())), Sum(m.plant()));
  return Mix(Mix(acc, Sum(m.oem())), m.count());
}

uint64_t ReadAll(const wire::VerificationRequest& m) {
  return Mix(Sum(m.barrier_id()), Sum(m.oem()));
}

uint64_t ReadAll(const wire::StockRequest& m) {
  return Mix(Mix(Sum(m.request_id()), Sum(m.product())), m.count());
}

uint64_t ReadAll(const wire::PlantStatus& m) {
  uint64_t acc = Mix(Sum(m.plant()), m.config_version());
  acc = Mix(acc, SumTables<wire::ProductStock>(m.stock(), [](const wire::ProductStock& s) {
              return Mix(
                  Mix(Mix(Mix(Mix(Sum(s.product()), s.in_stock()), s.reserved()), s.requested()),
                      s.injected()),
                  s.burned());
            }));
  acc = Mix(acc, SumTables<wire::QueueDepth>(m.queues(), [](const wire::QueueDepth& q) {
              return Mix(Mix(Mix(Sum(q.peer()), Sum(q.stream())), q.depth()), q.oldest_age_s());
            }));
  return Mix(acc, SumTables<wire::CertificateBudgetLevel>(
                      m.certificate_budgets(), [](const wire::CertificateBudgetLevel& b) {
                        return Mix(Mix(Mix(Mix(Sum(b.oem()), b.granted()), b.issued()), b.pending()),
                                   b.requested());
                      }));
}

uint64_t ReadAll(const wire::VerificationWatermark& m) {
  return Mix(Sum(m.barrier_id()), m.last_record_sequence());
}

// ---------------------------------------------------------------------------------------------
// pks_injector.fbs

template <>
std::vector<uint8_t> Sample<wire::KeyPackageRequest>() {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> uid = Counting(kEcuUidBytes, 1);
  fbb.Finish(
      wire::CreateKeyPackageRequestDirect(fbb, "inj-req-991", "line1-eol1", "acme-bcm-2027", &uid));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::KeyPackage>() {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::PackageSlot>> slots = {
      wire::CreatePackageSlot(fbb, 1, 1, 7, 0x10, CountingBytes(fbb, kM1Bytes, 0x01),
                              CountingBytes(fbb, kM2Bytes, 0x21),
                              CountingBytes(fbb, kM3Bytes, 0x61),
                              CountingBytes(fbb, kProofDigestBytes, 0x71)),
      wire::CreatePackageSlot(fbb, 4, 1, 8, 0x00, CountingBytes(fbb, kM1Bytes, 0x81),
                              CountingBytes(fbb, kM2Bytes, 0x91),
                              CountingBytes(fbb, kM3Bytes, 0xd1),
                              CountingBytes(fbb, kProofDigestBytes, 0xe1)),
  };
  const std::vector<uint8_t> uid = Counting(kEcuUidBytes, 1);
  const std::vector<uint8_t> challenge = Counting(kCertificateChallengeBytes, 0xa0);
  auto certificate = wire::CreateCertificateChallengeDirect(fbb, "identity", &challenge);
  fbb.Finish(wire::CreateKeyPackageDirect(fbb, "inj-req-991", "pkg-plant-a-000991", "ks-acme-0001",
                                          "acme-bcm-2027", &uid, 1764086400000000, &slots,
                                          /*error=*/0, certificate));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::CertificateRequest>() {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> uid = Counting(kEcuUidBytes, 1);
  fbb.Finish(wire::CreateCertificateRequestDirect(
      fbb, "pkg-plant-a-000991", &uid, "identity", "-----BEGIN CERTIFICATE REQUEST-----\necu\n"));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::CertificateIssued>() {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> uid = Counting(kEcuUidBytes, 1);
  const std::vector<uint8_t> confirm = Counting(kCertificateChallengeBytes, 0xc0);
  fbb.Finish(wire::CreateCertificateIssuedDirect(
      fbb, "pkg-plant-a-000991", &uid, "identity", "-----BEGIN CERTIFICATE-----\necu\n",
      "-----BEGIN CERTIFICATE-----\nplant\n", &confirm, /*error=*/0));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::InjectionResult>() {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::ResultSlot>> slots = {
      wire::CreateResultSlot(fbb, 1, CountingBytes(fbb, kM4Bytes, 0x40),
                             CountingBytes(fbb, kM5Bytes, 0x70), wire::EcuError::NONE, 1),
      wire::CreateResultSlot(fbb, 4, 0, 0, wire::EcuError::COUNTER_NOT_LARGER, 3),
  };
  const std::vector<uint8_t> uid = Counting(kEcuUidBytes, 1);
  const std::vector<uint8_t> confirmation = Counting(71, 0x30);
  auto certificate = wire::CreateCertificateResultDirect(fbb, "identity", wire::EcuError::NONE,
                                                         &confirmation, "");
  fbb.Finish(wire::CreateInjectionResultDirect(fbb, "pkg-plant-a-000991", &uid, &slots, 1,
                                               1764086401000000, certificate));
  return Finished(fbb);
}

uint64_t ReadAll(const wire::KeyPackageRequest& m) {
  return Mix(Mix(Mix(Sum(m.request_id()), Sum(m.station())), Sum(m.product())), Sum(m.ecu_uid()));
}

uint64_t ReadAll(const wire::KeyPackage& m) {
  uint64_t acc = Mix(Mix(Sum(m.request_id()), Sum(m.package_id())), Sum(m.key_set_id()));
  acc = Mix(Mix(Mix(acc, Sum(m.product())), Sum(m.ecu_uid())),
            static_cast<uint64_t>(m.deadline_us()));
  acc = Mix(acc, SumTables<wire::PackageSlot>(m.slots(), [](const wire::PackageSlot& s) {
              uint64_t a = Mix(Mix(Mix(s.slot(), s.auth_slot()), s.counter()), s.flags());
              return Mix(Mix(Mix(Mix(a, Sum(s.m1())), Sum(s.m2())), Sum(s.m3())),
                         Sum(s.proof_digest()));
            }));
  if (m.error() != nullptr) {
    acc = Mix(Mix(acc, static_cast<uint64_t>(m.error()->code())), Sum(m.error()->message()));
  }
  return acc;
}

uint64_t ReadAll(const wire::InjectionResult& m) {
  uint64_t acc = Mix(Sum(m.package_id()), Sum(m.ecu_uid()));
  acc = Mix(acc, SumTables<wire::ResultSlot>(m.slots(), [](const wire::ResultSlot& s) {
              return Mix(Mix(Mix(Mix(s.slot(), Sum(s.m4())), Sum(s.m5())),
                             static_cast<uint64_t>(s.ecu_error())),
                         s.attempts());
            }));
  acc = Mix(Mix(acc, m.attempts()), static_cast<uint64_t>(m.finished_at_us()));
  if (const wire::CertificateResult* c = m.certificate()) {
    acc = Mix(Mix(Mix(Mix(acc, Sum(c->slot())), static_cast<uint64_t>(c->ecu_error())),
                  Sum(c->confirmation())),
              Sum(c->detail()));
  }
  return acc;
}

uint64_t ReadAll(const wire::CertificateRequest& m) {
  return Mix(Mix(Mix(Sum(m.package_id()), Sum(m.ecu_uid())), Sum(m.slot())), Sum(m.csr()));
}

uint64_t ReadAll(const wire::CertificateIssued& m) {
  uint64_t acc = Mix(Mix(Mix(Sum(m.package_id()), Sum(m.ecu_uid())), Sum(m.slot())),
                     Sum(m.certificate()));
  acc = Mix(Mix(acc, Sum(m.chain())), Sum(m.confirm_challenge()));
  if (m.error() != nullptr) {
    acc = Mix(Mix(acc, static_cast<uint64_t>(m.error()->code())), Sum(m.error()->message()));
  }
  return acc;
}

// ---------------------------------------------------------------------------------------------
// records.fbs

std::vector<uint8_t> SampleInjectionRecordBody() {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::RecordSlot>> slots = {
      wire::CreateRecordSlot(fbb, 1, 1, 7, 0x10, CountingBytes(fbb, kM4Bytes, 0x40),
                             CountingBytes(fbb, kM5Bytes, 0x70)),
      wire::CreateRecordSlot(fbb, 4, 1, 8, 0x00, CountingBytes(fbb, kM4Bytes, 0x90),
                             CountingBytes(fbb, kM5Bytes, 0xe0)),
  };
  const std::vector<uint8_t> uid = Counting(kEcuUidBytes, 1);
  const std::vector<uint8_t> confirm = Counting(kCertificateChallengeBytes, 0xc0);
  const std::vector<uint8_t> confirmation = Counting(71, 0x30);
  auto certificate = wire::CreateRecordCertificateDirect(
      fbb, "identity", "-----BEGIN CERTIFICATE-----\necu\n", "-----BEGIN CERTIFICATE-----\nplant\n",
      &confirm, &confirmation);
  fbb.Finish(wire::CreateInjectionRecordBodyDirect(
      fbb, 1001, "plant-a", "line1-eol1", "acme-bcm-2027", "ks-acme-0001", &uid,
      wire::RecordOutcome::INJECTED, "", 1764086401500000, &slots, certificate));
  return Finished(fbb);
}

template <>
std::vector<uint8_t> Sample<wire::InjectionRecord>() {
  return BuildInjectionRecord(SampleInjectionRecordBody(), "pks-plant-a-2026",
                              Counting(kSignatureBytes, 0x80));
}

uint64_t ReadAll(const wire::InjectionRecordBody& m) {
  uint64_t acc = Mix(Mix(m.record_sequence(), Sum(m.plant())), Sum(m.station()));
  acc = Mix(Mix(Mix(acc, Sum(m.product())), Sum(m.key_set_id())), Sum(m.ecu_uid()));
  acc = Mix(Mix(Mix(acc, static_cast<uint64_t>(m.outcome())), Sum(m.burn_reason())),
            static_cast<uint64_t>(m.injected_at_us()));
  acc = Mix(acc, SumTables<wire::RecordSlot>(m.slots(), [](const wire::RecordSlot& s) {
              uint64_t a = Mix(Mix(Mix(s.slot(), s.auth_slot()), s.counter()), s.flags());
              return Mix(Mix(a, Sum(s.m4())), Sum(s.m5()));
            }));
  if (const wire::RecordCertificate* c = m.certificate()) {
    acc = Mix(Mix(Mix(acc, Sum(c->slot())), Sum(c->certificate())), Sum(c->chain()));
    acc = Mix(Mix(acc, Sum(c->confirm_challenge())), Sum(c->confirmation()));
  }
  return acc;
}

uint64_t ReadAll(const wire::InjectionRecord& m) {
  uint64_t acc = Mix(Mix(Sum(m.body()), Sum(m.signer())), Sum(m.signature()));
  // Only a verified record reaches here, and the Verifier checked the nested body too.
  if (m.body() != nullptr && m.body()->size() > 0) acc = Mix(acc, ReadAll(*m.body_nested_root()));
  return acc;
}

// ---------------------------------------------------------------------------------------------
// envelope.fbs

uint64_t ReadAll(const wire::Envelope& m) {
  uint64_t acc = Mix(Mix(Sum(m.message_id()), Sum(m.stream())), m.sequence());
  acc = Mix(Mix(acc, static_cast<uint64_t>(m.type())), Sum(m.sender()));
  return Mix(Mix(acc, static_cast<uint64_t>(m.created_at_us())), Sum(m.payload()));
}

// ---------------------------------------------------------------------------------------------
// admin.fbs

template <>
std::vector<uint8_t> Sample<wire::AdminRequest>() {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::SlotLayout>> slots = {
      wire::CreateSlotLayout(fbb, 1, 1, 1, 0),
      wire::CreateSlotLayout(fbb, 4, 1, 2, 0x02)};
  auto product = wire::CreateProduct(
      fbb, fbb.CreateString("acme-bcm"), fbb.CreateString("acme"), fbb.CreateVector(slots),
      wire::SheFlagLayout::SHE_CLASSIC, fbb.CreateString("acme-transport"), 100, 500, 60);
  auto add = wire::CreateProductAdd(fbb, product);
  fbb.Finish(wire::CreateAdminRequest(fbb, wire::AdminCommand::ProductAdd, add.Union()));
  auto bytes = FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

template <>
std::vector<uint8_t> Sample<wire::AdminReply>() {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> data = Counting(40, 0x30);
  fbb.Finish(wire::CreateAdminReply(fbb, fbb.CreateString("{\"ok\":true}"), CreateBytes(fbb, data)));
  auto bytes = FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

uint64_t ReadAll(const wire::AdminRequest& m) {
  uint64_t sum = static_cast<uint64_t>(m.command_type());
  if (const auto* add = m.command_as_ProductAdd(); add != nullptr && add->product() != nullptr) {
    const wire::Product* p = add->product();
    sum += Text(p->name()).size() + Text(p->oem()).size() + Text(p->transport_key_ref()).size();
    sum += p->min_stock() + p->target_stock() + p->reservation_timeout_s();
    if (p->slots() != nullptr) {
      for (const auto* slot : *p->slots()) {
        if (slot != nullptr) sum += slot->slot() + slot->auth_slot() + slot->counter() + slot->flags();
      }
    }
  }
  if (const auto* oem = m.command_as_OemAdd(); oem != nullptr) {
    sum += Text(oem->name()).size() + Bytes(oem->signing_public_key()).size();
  }
  if (const auto* upload = m.command_as_BatchUpload(); upload != nullptr) {
    for (uint8_t b : Bytes(upload->data())) sum += b;
  }
  return sum;
}

uint64_t ReadAll(const wire::AdminReply& m) {
  uint64_t sum = Text(m.json()).size();
  for (uint8_t b : Bytes(m.data())) sum += b;
  return sum;
}

}  // namespace keyline::schemas::testing
