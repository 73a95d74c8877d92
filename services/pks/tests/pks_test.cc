// The plant's invariants with the real PKS, real RocksDB and real CurveZMQ links: a stand-in
// KMS and stations on loopback, and an ECU that answers with the true SHE proof.
#include <boost/test/unit_test.hpp>

#include <set>
#include <thread>

#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/pks_injector_generated.h"
#include "plant_harness.h"

namespace keyline::pks::testing {
namespace {

constexpr char kStation[] = "line1-eol1";
using Received = TestPeer::Received;

// A plant configured with one product and `stock` key sets, its station connected.
struct ServingPlant {
  explicit ServingPlant(size_t stock, ProductSpec product = {}) {
    plant.StartPks();
    plant.Configure({product});
    if (stock > 0) plant.Ship(product.name, stock);
    plant.StartStation(kStation);
    BOOST_REQUIRE(WaitUntil([&] {
      auto s = plant.pks().Snapshot();
      return s.config_version == 1 && !s.products.empty() && s.products[0].in_stock == stock;
    }));
  }
  static bool WaitUntil(const std::function<bool()>& ready, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (ready()) return true;
      std::this_thread::sleep_for(20ms);
    }
    return ready();
  }
  ProductStatus Product() { return plant.pks().Snapshot().products.at(0); }
  PlantHarness plant;
};

size_t CountType(TestPeer& peer, wire::MessageType type) { return peer.Of(type).size(); }

BOOST_AUTO_TEST_CASE(ServesAPackageAndRecordsTheInjection) {
  ServingPlant s(5);
  hsm::SheUid uid = PlantHarness::Uid(1);
  auto package = s.plant.Request(kStation, "acme-bcm", uid);
  BOOST_REQUIRE(package);
  BOOST_TEST(package->error == 0, package->message);
  BOOST_TEST(package->slots.size() == 3u);
  BOOST_TEST(s.plant.PackageIsCorrect(*package, uid));
  BOOST_TEST(s.Product().reserved == 1u);
  BOOST_TEST(s.Product().in_stock == 4u);

  s.plant.Report(kStation, *package, uid);
  BOOST_REQUIRE(s.plant.kms().WaitFor([](const std::vector<Received>& r) {
    for (const auto& m : r) if (m.type == wire::MessageType::InjectionRecord) return true;
    return false;
  }));
  auto records = s.plant.Records();
  BOOST_REQUIRE_EQUAL(records.size(), 1u);
  BOOST_TEST(records[0].injected);
  BOOST_TEST(records[0].signature_valid);
  BOOST_TEST(records[0].record_sequence == 1u);
  BOOST_TEST(records[0].key_set_id == package->key_set_id);
  BOOST_TEST(records[0].station == kStation);
  BOOST_TEST(records[0].slots_with_proof == 3u);
  BOOST_TEST(records[0].ecu_uid == uid);
  BOOST_TEST(s.Product().injected == 1u);
  BOOST_TEST(s.Product().reserved == 0u);
}

BOOST_AUTO_TEST_CASE(RepeatedRequestGetsTheSameKeySet) {
  ServingPlant s(5);
  hsm::SheUid uid = PlantHarness::Uid(7);
  auto first = s.plant.Request(kStation, "acme-bcm", uid);
  auto again = s.plant.Request(kStation, "acme-bcm", uid);
  auto other = s.plant.Request(kStation, "acme-bcm", PlantHarness::Uid(8));
  BOOST_REQUIRE(first && again && other);
  BOOST_TEST(first->key_set_id == again->key_set_id);
  BOOST_TEST(first->package_id == again->package_id);
  BOOST_TEST(first->slots[2].m2 == again->slots[2].m2);
  BOOST_TEST(first->deadline_us == again->deadline_us);
  BOOST_TEST(other->key_set_id != first->key_set_id);
  BOOST_TEST(s.Product().reserved == 2u);

  // Still the same after the injection is recorded.
  s.plant.Report(kStation, *first, uid);
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.Product().injected == 1; }));
  auto after = s.plant.Request(kStation, "acme-bcm", uid);
  BOOST_REQUIRE(after);
  BOOST_TEST(after->key_set_id == first->key_set_id);
  BOOST_TEST(s.Product().reserved == 1u);
  BOOST_TEST(s.Product().in_stock == 3u);
}

BOOST_AUTO_TEST_CASE(RefusalsAreSpecificAndReserveNothing) {
  ServingPlant s(3);
  auto unknown_product = s.plant.Request(kStation, "no-such-product", PlantHarness::Uid(1));
  BOOST_REQUIRE(unknown_product);
  BOOST_TEST(unknown_product->error == static_cast<int>(wire::PackageErrorCode::UNKNOWN_PRODUCT));
  BOOST_TEST(unknown_product->message.find("no-such-product") != std::string::npos);

  std::vector<uint8_t> short_uid(14, 0x11);
  std::string id = s.plant.SendRequest(kStation, "acme-bcm", short_uid);
  auto wildcard = s.plant.Request(kStation, "acme-bcm", hsm::SheUid{});
  BOOST_REQUIRE(wildcard);
  BOOST_TEST(wildcard->error == static_cast<int>(wire::PackageErrorCode::BAD_UID));
  bool found_short = false;
  for (const auto& r : s.plant.station(kStation).Of(wire::MessageType::KeyPackage)) {
    auto p = flatbuffers::GetRoot<wire::KeyPackage>(r.payload.data());
    if (schemas::Text(p->request_id()) == id) {
      found_short = true;
      BOOST_TEST(static_cast<int>(p->error()->code()) == static_cast<int>(wire::PackageErrorCode::BAD_UID));
      BOOST_TEST(std::string(schemas::Text(p->error()->message())).find("expected 15 bytes") != std::string::npos);
    }
  }
  BOOST_TEST(found_short);

  auto impostor = s.plant.Request(kStation, "acme-bcm", PlantHarness::Uid(2), "line9-eol9");
  BOOST_REQUIRE(impostor);
  BOOST_TEST(impostor->error == static_cast<int>(wire::PackageErrorCode::UNKNOWN_STATION));

  BOOST_TEST(s.Product().reserved == 0u);
  BOOST_TEST(s.Product().in_stock == 3u);

  for (uint64_t n = 10; n < 13; ++n) {
    auto ok = s.plant.Request(kStation, "acme-bcm", PlantHarness::Uid(n));
    BOOST_REQUIRE(ok);
    BOOST_TEST(ok->error == 0);
  }
  auto out = s.plant.Request(kStation, "acme-bcm", PlantHarness::Uid(99));
  BOOST_REQUIRE(out);
  BOOST_TEST(out->error == static_cast<int>(wire::PackageErrorCode::OUT_OF_STOCK));
  BOOST_TEST(out->key_set_id.empty());
  BOOST_TEST(s.Product().reserved == 3u);
}

BOOST_AUTO_TEST_CASE(ReservationIsBurnedAfterItsDeadline) {
  ProductSpec product;
  product.reservation_timeout_s = 1;
  ServingPlant s(2, product);
  hsm::SheUid uid = PlantHarness::Uid(5);
  auto package = s.plant.Request(kStation, "acme-bcm", uid);
  BOOST_REQUIRE(package && package->error == 0);
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.Product().burned == 1; }, 5s));
  BOOST_TEST(s.Product().reserved == 0u);
  BOOST_REQUIRE(s.plant.kms().WaitFor([](const std::vector<Received>& r) {
    for (const auto& m : r) if (m.type == wire::MessageType::InjectionRecord) return true;
    return false;
  }));
  auto records = s.plant.Records();
  BOOST_REQUIRE_EQUAL(records.size(), 1u);
  BOOST_TEST(!records[0].injected);
  BOOST_TEST(records[0].burn_reason.find("timed out") != std::string::npos);

  // A result after the deadline changes nothing; the ECU is not handed another key set.
  s.plant.Report(kStation, *package, uid);
  auto again = s.plant.Request(kStation, "acme-bcm", uid);
  BOOST_REQUIRE(again);
  BOOST_TEST(again->error == static_cast<int>(wire::PackageErrorCode::RESERVATION_BURNED));
  BOOST_TEST(s.Product().injected == 0u);
  BOOST_TEST(s.Product().in_stock == 1u);
  BOOST_TEST(s.plant.Records().size() == 1u);
}

BOOST_AUTO_TEST_CASE(WrongProofBurnsTheKeySet) {
  ServingPlant s(2);
  hsm::SheUid uid = PlantHarness::Uid(6);
  auto package = s.plant.Request(kStation, "acme-bcm", uid);
  BOOST_REQUIRE(package && package->error == 0);
  s.plant.Report(kStation, *package, uid, /*corrupt_slot=*/1);
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.Product().burned == 1; }));
  BOOST_REQUIRE(s.plant.kms().WaitFor([](const std::vector<Received>& r) {
    for (const auto& m : r) if (m.type == wire::MessageType::InjectionRecord) return true;
    return false;
  }));
  auto records = s.plant.Records();
  BOOST_REQUIRE_EQUAL(records.size(), 1u);
  BOOST_TEST(!records[0].injected);
  BOOST_TEST(records[0].burn_reason.find("slot 4: WRONG_PROOF") != std::string::npos,
             records[0].burn_reason);
  BOOST_TEST(records[0].signature_valid);
}

BOOST_AUTO_TEST_CASE(LowStockAsksTheKmsExactlyOnce) {
  ProductSpec product;
  product.min_stock = 3;
  product.target_stock = 6;
  ServingPlant s(0, product);
  auto stock_requests = [&](size_t n) {
    return s.plant.kms().WaitFor([n](const std::vector<Received>& r) {
      size_t count = 0;
      for (const auto& m : r) count += m.type == wire::MessageType::StockRequest;
      return count >= n;
    });
  };
  struct Asked {
    uint32_t count = 0;
    std::string request_id;
  };
  auto asked = [&](size_t i) {
    auto requests = s.plant.kms().Of(wire::MessageType::StockRequest);
    auto request = flatbuffers::GetRoot<wire::StockRequest>(requests.at(i).payload.data());
    return Asked{request->count(), std::string(schemas::Text(request->request_id()))};
  };
  // A product configured with no stock: one request for the whole target.
  BOOST_REQUIRE(stock_requests(1));
  BOOST_TEST(asked(0).count == 6u);
  BOOST_TEST(s.Product().requested == 6u);
  s.plant.Ship("acme-bcm", 6, asked(0).request_id);
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.Product().in_stock == 6; }));
  BOOST_TEST(s.Product().requested == 0u);

  // Falling below the minimum asks once, for target - stock - requested.
  for (uint64_t n = 1; n <= 4; ++n) {
    auto p = s.plant.Request(kStation, "acme-bcm", PlantHarness::Uid(n));
    BOOST_REQUIRE(p && p->error == 0);
  }
  BOOST_REQUIRE(stock_requests(2));
  BOOST_TEST(asked(1).count == 4u);
  // Further use while that request is outstanding asks nothing more.
  auto p = s.plant.Request(kStation, "acme-bcm", PlantHarness::Uid(5));
  BOOST_REQUIRE(p && p->error == 0);
  std::this_thread::sleep_for(1500ms);  // several maintenance rounds
  BOOST_TEST(CountType(s.plant.kms(), wire::MessageType::StockRequest) == 2u);
  BOOST_TEST(s.Product().requested == 4u);
  BOOST_TEST(s.Product().in_stock == 1u);
}

BOOST_AUTO_TEST_CASE(UnansweredStockRequestIsSentAgainUnderTheSameId) {
  ProductSpec product;
  product.min_stock = 2;
  product.target_stock = 4;
  PlantHarness plant;
  plant.SetStockRequestRetry(2);
  plant.StartPks();
  plant.Configure({product});
  // The KMS "loses" the first request: it never answers. The PKS asks again with the same id.
  BOOST_REQUIRE(plant.kms().WaitFor([](const std::vector<Received>& r) {
    size_t n = 0;
    for (const auto& m : r) n += m.type == wire::MessageType::StockRequest;
    return n >= 2;
  }, 15s));
  auto requests = plant.kms().Of(wire::MessageType::StockRequest);
  auto first = flatbuffers::GetRoot<wire::StockRequest>(requests[0].payload.data());
  auto second = flatbuffers::GetRoot<wire::StockRequest>(requests[1].payload.data());
  BOOST_TEST(schemas::Text(first->request_id()) == schemas::Text(second->request_id()));
  BOOST_TEST(second->count() == 4u);
  BOOST_TEST(requests[1].sequence > requests[0].sequence);
  // Answered once: nothing is outstanding any more.
  plant.Ship("acme-bcm", 4, std::string(schemas::Text(first->request_id())));
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] {
    auto p = plant.pks().Snapshot().products;
    return !p.empty() && p[0].in_stock == 4 && p[0].requested == 0;
  }));
}

BOOST_AUTO_TEST_CASE(ServesOfflineAndDeliversTheBacklogOnReconnect) {
  ServingPlant s(10);
  s.plant.StopKms();
  std::set<std::string> key_sets;
  for (uint64_t n = 1; n <= 6; ++n) {
    hsm::SheUid uid = PlantHarness::Uid(100 + n);
    auto package = s.plant.Request(kStation, "acme-bcm", uid);
    BOOST_REQUIRE(package && package->error == 0);
    key_sets.insert(package->key_set_id);
    s.plant.Report(kStation, *package, uid);
  }
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.Product().injected == 6; }));
  BOOST_TEST(key_sets.size() == 6u);
  BOOST_TEST(ServingPlant::WaitUntil([&] { return s.plant.pks().Snapshot().records_queued == 6; }));
  BOOST_TEST(s.plant.Records().empty());

  s.plant.StartKms();
  BOOST_REQUIRE(s.plant.kms().WaitFor([](const std::vector<Received>& r) {
    size_t n = 0;
    for (const auto& m : r) n += m.type == wire::MessageType::InjectionRecord;
    return n == 6;
  }, 15s));
  auto records = s.plant.Records();
  std::set<uint64_t> sequences;
  for (const auto& r : records) sequences.insert(r.record_sequence);
  BOOST_TEST(sequences.size() == 6u);
  BOOST_TEST(*sequences.begin() == 1u);
  BOOST_TEST(*sequences.rbegin() == 6u);
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.plant.pks().Snapshot().records_queued == 0; }));
}

BOOST_AUTO_TEST_CASE(WatermarkFollowsTheRecordsItCovers) {
  ServingPlant s(4);
  for (uint64_t n = 1; n <= 3; ++n) {
    hsm::SheUid uid = PlantHarness::Uid(n);
    auto package = s.plant.Request(kStation, "acme-bcm", uid);
    BOOST_REQUIRE(package && package->error == 0);
    s.plant.Report(kStation, *package, uid);
  }
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.Product().injected == 3; }));
  s.plant.SendVerificationRequest("barrier-1");
  BOOST_REQUIRE(s.plant.kms().WaitFor([](const std::vector<Received>& r) {
    for (const auto& m : r) if (m.type == wire::MessageType::VerificationWatermark) return true;
    return false;
  }));
  auto watermark = s.plant.kms().Of(wire::MessageType::VerificationWatermark).at(0);
  auto body = flatbuffers::GetRoot<wire::VerificationWatermark>(watermark.payload.data());
  BOOST_TEST(schemas::Text(body->barrier_id()) == "barrier-1");
  BOOST_TEST(body->last_record_sequence() == 3u);
  for (const auto& record : s.plant.kms().Of(wire::MessageType::InjectionRecord)) {
    BOOST_TEST(record.stream == "records");
    BOOST_TEST(record.sequence < watermark.sequence);
  }
}

BOOST_AUTO_TEST_CASE(StockBatchRepeatedOrSealedForAnotherPlantChangesNothing) {
  ServingPlant s(2);
  s.plant.Ship("acme-bcm", 3, "", "batch-1");  // the batch id ServingPlant already used
  s.plant.ShipSealedForAnotherPlant("acme-bcm", 3);
  s.plant.Ship("acme-bcm", 1);  // a good batch after them still applies: the stream goes on
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.Product().in_stock == 3; }));
  std::this_thread::sleep_for(300ms);
  BOOST_TEST(s.Product().in_stock == 3u);
}

BOOST_AUTO_TEST_CASE(ConfigurationForAnotherPlantIsRefused) {
  ServingPlant s(1);
  PlantHarness::ConfigOptions other;
  other.plant = "plant-b";
  ProductSpec product;
  product.name = "other-product";
  s.plant.Configure({product}, other);
  ProductSpec next;
  next.name = "acme-bcm-2";
  s.plant.Configure({ProductSpec{}, next});  // version 3, for this plant: applies
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.plant.pks().Snapshot().config_version == 3; }));
  for (const auto& p : s.plant.pks().Snapshot().products) BOOST_TEST(p.product != "other-product");
}

std::vector<uint8_t> PlantCaRequestBytes(const std::string& request_id, const std::string& key_name,
                                         const std::vector<uint8_t>& challenge) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreatePlantCaRequestDirect(fbb, request_id.c_str(), "acme", key_name.c_str(), "Acme Motors",
                                              "plant-a", "acme issuing CA plant-a 1", &challenge));
  auto bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

// The KMS asks for an issuing CA: the key is made in the plant HSM and stays the same key, the
// CSR proves it over the KMS's challenge, and a certificate for it in the configuration shows
// in the status. A malformed request is refused and the PKS keeps serving.
BOOST_AUTO_TEST_CASE(IssuingCaKeyStaysInTheHsmAndItsCertificateIsInstalled) {
  ServingPlant s(2);
  const std::vector<uint8_t> challenge(32, 0x5c);
  auto request = PlantCaRequestBytes("plant-a/acme/1", "plant-ca/acme/1", challenge);
  s.plant.kms().Send({"plant-a", "control"}, wire::MessageType::PlantCaRequest, request);
  s.plant.kms().Send({"plant-a", "control"}, wire::MessageType::PlantCaRequest,
                     PlantCaRequestBytes("plant-a/acme/x", "plant-ca/acme/1", std::vector<uint8_t>(5, 1)));
  s.plant.kms().Send({"plant-a", "control"}, wire::MessageType::PlantCaRequest, request);  // repeated
  BOOST_REQUIRE(s.plant.kms().WaitFor([](const std::vector<Received>& got) {
    size_t csrs = 0;
    for (const auto& r : got) csrs += r.type == wire::MessageType::PlantCaCsr;
    return csrs == 2;
  }));
  std::vector<std::vector<uint8_t>> keys;
  std::string csr_pem;
  for (const Received& r : s.plant.kms().Of(wire::MessageType::PlantCaCsr)) {
    const auto* csr = flatbuffers::GetRoot<wire::PlantCaCsr>(r.payload.data());
    BOOST_TEST(csr->request_id()->str() == "plant-a/acme/1");
    csr_pem = csr->csr()->str();
    auto checked = hsm::CheckCsr(csr_pem, challenge);
    BOOST_REQUIRE_MESSAGE(checked.ok(), checked.status().ToString());
    BOOST_TEST(checked->subject.common_name == "acme issuing CA plant-a 1");
    BOOST_TEST(checked->subject.organizational_unit == "plant-a");
    keys.push_back(checked->spki_der);
  }
  BOOST_TEST((keys[0] == keys[1]));  // one key, however often the KMS asks

  // The OEM CA signs; the KMS ships the certificate in the configuration.
  auto oem = std::move(*hsm::CreateSoftwareCustody({}));
  auto root_key = *oem->GenerateKey(hsm::KeyKind::kEcdsaP256);
  hsm::CertificateSubject root_subject;
  root_subject.common_name = "Acme root";
  const std::string root = *hsm::SelfSignCa(*oem, root_key, root_subject, hsm::ValidForDaysFromNow(3650));
  const std::string certificate =
      *hsm::IssueCaCertificate(*oem, root_key, root, *hsm::CheckCsr(csr_pem, challenge), hsm::ValidForDaysFromNow(1825));
  PlantHarness::ConfigOptions options;
  options.issuing_cas.push_back({"acme", "plant-ca/acme/1", certificate, root});
  s.plant.Configure({ProductSpec{}}, options);
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.plant.pks().Snapshot().config_version == 2; }));
  const auto cas = s.plant.pks().Snapshot().issuing_cas;
  BOOST_REQUIRE(cas.size() == 1u);
  BOOST_TEST(cas[0].oem == "acme");
  BOOST_TEST(cas[0].key_name == "plant-ca/acme/1");
  BOOST_TEST(cas[0].subject == "acme issuing CA plant-a 1");
  BOOST_TEST(cas[0].not_after_us > 0);
  // Still serving.
  BOOST_TEST(s.plant.Request(kStation, "acme-bcm", PlantHarness::Uid(7)).has_value());
}

BOOST_AUTO_TEST_CASE(ScheduledContactOpensAtOnceWhenStockRunsLow) {
  ProductSpec product;
  product.min_stock = 2;
  product.target_stock = 4;
  ServingPlant s(4, product);
  PlantHarness::ConfigOptions hourly;
  hourly.interval_s = 3600;
  s.plant.Configure({product}, hourly);
  // The plant drains and closes its link after the configuration: wait for the quiet phase.
  std::this_thread::sleep_for(2500ms);
  for (uint64_t n = 1; n <= 3; ++n) {
    auto p = s.plant.Request(kStation, "acme-bcm", PlantHarness::Uid(n));
    BOOST_REQUIRE(p && p->error == 0);
  }
  // Below the minimum: the request goes now, not in an hour.
  BOOST_TEST(s.plant.kms().WaitFor([](const std::vector<Received>& r) {
    for (const auto& m : r) if (m.type == wire::MessageType::StockRequest) return true;
    return false;
  }, 10s));
}

BOOST_AUTO_TEST_CASE(StateSurvivesARestart) {
  ServingPlant s(5);
  hsm::SheUid reserved_uid = PlantHarness::Uid(1);
  hsm::SheUid injected_uid = PlantHarness::Uid(2);
  auto reserved = s.plant.Request(kStation, "acme-bcm", reserved_uid);
  auto injected = s.plant.Request(kStation, "acme-bcm", injected_uid);
  BOOST_REQUIRE(reserved && injected);
  s.plant.Report(kStation, *injected, injected_uid);
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.Product().injected == 1; }));
  s.plant.StopPks();
  s.plant.StartPks();
  ProductStatus product = s.Product();
  BOOST_TEST(product.in_stock == 3u);
  BOOST_TEST(product.reserved == 1u);
  BOOST_TEST(product.injected == 1u);
  BOOST_TEST(s.plant.pks().Snapshot().config_version == 1u);
  auto again = s.plant.Request(kStation, "acme-bcm", reserved_uid, "", 15s);
  BOOST_REQUIRE(again);
  BOOST_TEST(again->key_set_id == reserved->key_set_id);
  s.plant.Report(kStation, *again, reserved_uid);
  BOOST_REQUIRE(ServingPlant::WaitUntil([&] { return s.Product().injected == 2; }));

  auto status = ReadPksStatus(s.plant.config());
  BOOST_REQUIRE_MESSAGE(status.ok(), status.status().ToString());
  BOOST_TEST(status->products.at(0).injected == 2u);
  BOOST_TEST(status->records_written == 2u);
  // The same from the data dir alone: the plant comes from the stored configuration.
  auto from_dir = ReadPksStatus(s.plant.config().data_dir);
  BOOST_REQUIRE_MESSAGE(from_dir.ok(), from_dir.status().ToString());
  BOOST_TEST(from_dir->plant_id == "plant-a");
  BOOST_TEST(from_dir->products.at(0).injected == 2u);
}

}  // namespace
}  // namespace keyline::pks::testing
