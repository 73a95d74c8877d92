// ECU certificates at the PKS (docs/certificates.md): a CSR is checked against its reservation,
// the plant's issuing CA signs once per ECU slot, the ECU's confirmation decides INJECTED, and
// the record carries the certificate. A real PKS on loopback, a real RocksDB, real CurveZMQ.
#include <boost/test/unit_test.hpp>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "keyline/common/hex.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/hsm/x509.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/kms_pks_generated.h"
#include "plant_harness.h"

namespace keyline::pks::testing {
namespace {

constexpr char kStation[] = "line1-eol1";
constexpr int kCsrRefused = 8;    // wire::PackageErrorCode::CSR_REFUSED
constexpr int kNoIssuingCa = 9;   // wire::PackageErrorCode::NO_ISSUING_CA
constexpr int kBudgetExhausted = 10;  // wire::PackageErrorCode::BUDGET_EXHAUSTED
constexpr int kNotReserved = 11;  // wire::PackageErrorCode::NOT_RESERVED
constexpr int kEcuGeneralError = 7;

bool WaitUntil(const std::function<bool()>& ready, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return ready();
}

// An ECU's identity: a P-256 key in its own custody.
struct Ecu {
  explicit Ecu(uint64_t n) : uid(PlantHarness::Uid(n)) {
    custody = std::move(*hsm::CreateSoftwareCustody({}));
    key = *custody->GenerateKey(hsm::KeyKind::kEcdsaP256);
  }
  std::string Csr(std::span<const uint8_t> challenge, std::string serial = "") {
    hsm::CertificateSubject subject;
    subject.serial_number = serial.empty() ? ToHex(uid) : serial;
    auto csr = hsm::MakeCsr(*custody, key, subject, challenge);
    BOOST_REQUIRE(csr.ok());
    return *csr;
  }
  CertificateReport Confirm(const IssuedView& issued) {
    CertificateReport report;
    report.confirmation =
        *custody->SignEcdsaSha256(key, hsm::CertificateConfirmationMessage(uid, issued.confirm_challenge));
    return report;
  }
  hsm::SheUid uid;
  std::unique_ptr<hsm::KeyCustody> custody;
  hsm::KeyHandle key;
};

// The same CSR with its signature's last byte changed: well formed, no proof of possession.
std::string BreakSignature(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                              &BIO_free);
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(
      PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr), &X509_REQ_free);
  BOOST_REQUIRE(req);
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  BOOST_REQUIRE(len > 0);
  der[len - 1] ^= 0x01;
  const unsigned char* p = der;
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> broken(d2i_X509_REQ(nullptr, &p, len),
                                                             &X509_REQ_free);
  OPENSSL_free(der);
  BOOST_REQUIRE(broken);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
  BOOST_REQUIRE(PEM_write_bio_X509_REQ(out.get(), broken.get()) == 1);
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// A plant with stock of a product with a certificate slot and its issuing CA installed.
struct CertifyingPlant {
  explicit CertifyingPlant(size_t stock, uint32_t grant = 1000, uint32_t budget_min = 0,
                           uint32_t budget_target = 0) {
    product.certificate_slot = true;
    plant.StartPks();
    plant.Configure({product});
    plant.Ship(product.name, stock);
    plant.StartStation(kStation);
    root = plant.InstallIssuingCa({product}, grant, budget_min, budget_target);
    BOOST_REQUIRE(WaitUntil([&] {
      auto s = plant.pks().Snapshot();
      return s.config_version == 2 && s.issuing_cas.size() == 1 && !s.products.empty() &&
             s.products[0].in_stock == stock;
    }));
  }
  PackageView Reserve(const Ecu& ecu) {
    auto package = plant.Request(kStation, product.name, ecu.uid);
    BOOST_REQUIRE(package);
    BOOST_REQUIRE_MESSAGE(package->error == 0, package->message);
    return *package;
  }
  std::vector<RecordView> AwaitRecords(size_t n) {
    BOOST_REQUIRE(WaitUntil([&] { return plant.Records().size() >= n; }));
    return plant.Records();
  }
  // Reserves, has the certificate issued and confirms it: one ECU through the whole flow.
  void Provision(Ecu& ecu) {
    PackageView package = Reserve(ecu);
    auto issued = plant.RequestCertificate(kStation, package, ecu.uid, ecu.Csr(package.certificate_challenge));
    BOOST_REQUIRE(issued);
    BOOST_REQUIRE_MESSAGE(issued->error == 0, issued->message);
    plant.Report(kStation, package, ecu.uid, ecu.Confirm(*issued));
  }
  CertificateBudgetStatus Budget() {
    auto budgets = plant.pks().Snapshot().certificate_budgets;
    BOOST_REQUIRE_EQUAL(budgets.size(), 1u);
    return budgets[0];
  }
  ProductSpec product;
  PlantHarness plant;
  std::string root;
};

BOOST_AUTO_TEST_SUITE(PksCertificates)

// The package carries a fresh challenge; the certificate is for the ECU's key and UID, chains
// to the OEM root through the plant CA, and asking again gets the same one. The confirmation
// makes the key set INJECTED, and the record carries certificate, chain and confirmation.
BOOST_AUTO_TEST_CASE(IssuesOnceAndRecordsTheConfirmedCertificate) {
  CertifyingPlant c(3);
  Ecu ecu(1);
  PackageView package = c.Reserve(ecu);
  BOOST_TEST(package.certificate_slot == "identity");
  BOOST_REQUIRE(package.certificate_challenge.size() == 32u);
  PackageView other = c.Reserve(Ecu(2));
  BOOST_TEST((other.certificate_challenge != package.certificate_challenge));

  const std::string csr = ecu.Csr(package.certificate_challenge);
  auto issued = c.plant.RequestCertificate(kStation, package, ecu.uid, csr);
  BOOST_REQUIRE(issued);
  BOOST_REQUIRE_MESSAGE(issued->error == 0, issued->message);
  BOOST_REQUIRE(issued->confirm_challenge.size() == 32u);
  std::vector<std::string> chain{issued->chain};
  Status chains = hsm::VerifyChain(issued->certificate, chain, c.root,
                                   std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
  BOOST_TEST(chains.ok(), chains.ToString());
  auto info = hsm::InspectCertificate(issued->certificate);
  BOOST_REQUIRE(info.ok());
  BOOST_TEST(info->subject.serial_number == ToHex(ecu.uid));
  BOOST_TEST(info->subject.common_name == "acme-bcm " + ToHex(ecu.uid));
  BOOST_TEST(info->subject.organization == "Acme");
  BOOST_TEST(!info->is_ca);
  BOOST_TEST((info->spki_der == *ecu.custody->GetPublicKeyInfo(ecu.key)));

  // Asking again, with a CSR over the same challenge and key: the same certificate.
  auto again = c.plant.RequestCertificate(kStation, package, ecu.uid, ecu.Csr(package.certificate_challenge));
  BOOST_REQUIRE(again);
  BOOST_TEST(again->error == 0);
  BOOST_TEST(again->certificate == issued->certificate);
  BOOST_TEST((again->confirm_challenge == issued->confirm_challenge));
  // Another key for the same ECU slot: refused, never a second certificate.
  Ecu impostor(1);
  auto second = c.plant.RequestCertificate(kStation, package, ecu.uid,
                                           impostor.Csr(package.certificate_challenge));
  BOOST_REQUIRE(second);
  BOOST_TEST(second->error == kCsrRefused);
  BOOST_TEST(second->message.find("already issued") != std::string::npos, second->message);

  c.plant.Report(kStation, package, ecu.uid, ecu.Confirm(*issued));
  auto records = c.AwaitRecords(1);
  BOOST_REQUIRE_EQUAL(records.size(), 1u);
  BOOST_TEST(records[0].injected, records[0].burn_reason);
  BOOST_TEST(records[0].signature_valid);
  BOOST_TEST(records[0].certificate == issued->certificate);
  BOOST_TEST(records[0].certificate_chain == issued->chain);
  BOOST_TEST((records[0].confirm_challenge == issued->confirm_challenge));
  auto key = hsm::PublicKeyInfoOf(records[0].certificate);
  BOOST_REQUIRE(key.ok());
  BOOST_TEST(hsm::VerifyEcdsaSha256(*key, hsm::CertificateConfirmationMessage(ecu.uid, records[0].confirm_challenge),
                                    records[0].confirmation)
                 .ok());
  // Decided: no certificate for this package any more.
  auto late = c.plant.RequestCertificate(kStation, package, ecu.uid, csr);
  BOOST_REQUIRE(late);
  BOOST_TEST(late->error == kNotReserved);
}

// A CSR without proof of possession, for another UID, or over another package's challenge (a
// replay) is refused with CSR_REFUSED and binds nothing: the ECU's own CSR, with another key,
// is then issued.
BOOST_AUTO_TEST_CASE(BadCsrsAreRefusedAndIssueNothing) {
  CertifyingPlant c(3);
  Ecu ecu(1);
  PackageView package = c.Reserve(ecu);
  PackageView neighbour = c.Reserve(Ecu(2));
  Ecu attacker(1);

  struct Case {
    const char* what;
    std::string csr;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"no proof of possession", BreakSignature(attacker.Csr(package.certificate_challenge)), "signature"},
      {"another ECU's UID", attacker.Csr(package.certificate_challenge, ToHex(PlantHarness::Uid(2))),
       "serialNumber"},
      {"another package's challenge", attacker.Csr(neighbour.certificate_challenge), "challenge"},
      {"not a CSR", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", ""},
  };
  for (const Case& bad : cases) {
    auto refused = c.plant.RequestCertificate(kStation, package, ecu.uid, bad.csr);
    BOOST_REQUIRE(refused);
    BOOST_TEST(refused->error == kCsrRefused, bad.what);
    BOOST_TEST(refused->certificate.empty(), bad.what);
    BOOST_TEST(refused->message.find(bad.says) != std::string::npos, bad.what << ": " << refused->message);
  }
  // The wrong slot name and another station's package are refused too.
  auto wrong_slot = c.plant.RequestCertificate(kStation, package, ecu.uid,
                                               ecu.Csr(package.certificate_challenge), "other");
  BOOST_REQUIRE(wrong_slot);
  BOOST_TEST(wrong_slot->error != 0);

  auto issued = c.plant.RequestCertificate(kStation, package, ecu.uid, ecu.Csr(package.certificate_challenge));
  BOOST_REQUIRE(issued);
  BOOST_TEST(issued->error == 0, issued->message);
  BOOST_TEST((hsm::PublicKeyInfoOf(issued->certificate).value() == *ecu.custody->GetPublicKeyInfo(ecu.key)));
}

// Without a (valid) issuing CA the PKS issues nothing and hands out no new package, and a
// result without a confirmation, or with a wrong one, burns the key set; the record still lists
// an issued certificate.
BOOST_AUTO_TEST_CASE(RevokedCaIssuesNothingAndUnconfirmedCertificatesBurn) {
  CertifyingPlant c(4);
  Ecu confirmed_wrongly(1), unconfirmed(2), after_revoke(3);
  PackageView p1 = c.Reserve(confirmed_wrongly);
  PackageView p2 = c.Reserve(unconfirmed);
  PackageView p3 = c.Reserve(after_revoke);
  auto issued1 = c.plant.RequestCertificate(kStation, p1, confirmed_wrongly.uid,
                                            confirmed_wrongly.Csr(p1.certificate_challenge));
  auto issued2 = c.plant.RequestCertificate(kStation, p2, unconfirmed.uid,
                                            unconfirmed.Csr(p2.certificate_challenge));
  BOOST_REQUIRE(issued1 && issued1->error == 0);
  BOOST_REQUIRE(issued2 && issued2->error == 0);

  // Revoked: the configuration no longer lists the CA.
  c.plant.Configure({c.product});
  BOOST_REQUIRE(WaitUntil([&] { return c.plant.pks().Snapshot().issuing_cas.empty(); }));
  auto no_package = c.plant.Request(kStation, c.product.name, PlantHarness::Uid(4));
  BOOST_REQUIRE(no_package);
  BOOST_TEST(no_package->error == kNoIssuingCa, no_package->message);
  BOOST_TEST(no_package->message.find("holds no issuing CA for OEM \"acme\"") != std::string::npos,
             no_package->message);
  BOOST_TEST(no_package->key_set_id.empty());
  auto refused = c.plant.RequestCertificate(kStation, p3, after_revoke.uid,
                                            after_revoke.Csr(p3.certificate_challenge));
  BOOST_REQUIRE(refused);
  BOOST_TEST(refused->error == kNoIssuingCa, refused->message);
  BOOST_TEST(refused->certificate.empty());
  // Already issued before the revocation: the ECU still gets the same one back.
  auto repeated = c.plant.RequestCertificate(kStation, p1, confirmed_wrongly.uid,
                                             confirmed_wrongly.Csr(p1.certificate_challenge));
  BOOST_REQUIRE(repeated);
  BOOST_TEST(repeated->certificate == issued1->certificate);

  CertificateReport wrong = unconfirmed.Confirm(*issued1);  // another key's signature
  c.plant.Report(kStation, p1, confirmed_wrongly.uid, wrong);
  CertificateReport failed;
  failed.ecu_error = kEcuGeneralError;
  failed.detail = "storing the certificate: GENERAL_ERROR";
  c.plant.Report(kStation, p2, unconfirmed.uid, failed);
  c.plant.Report(kStation, p3, after_revoke.uid);  // no certificate result at all
  auto records = c.AwaitRecords(3);
  BOOST_REQUIRE_EQUAL(records.size(), 3u);
  for (const RecordView& r : records) BOOST_TEST(!r.injected);
  BOOST_TEST(records[0].burn_reason.find("WRONG_CONFIRMATION") != std::string::npos, records[0].burn_reason);
  BOOST_TEST(records[0].certificate == issued1->certificate);
  BOOST_TEST(records[1].burn_reason.find("GENERAL_ERROR") != std::string::npos, records[1].burn_reason);
  BOOST_TEST(records[1].certificate == issued2->certificate);
  BOOST_TEST(records[1].confirmation.empty());
  BOOST_TEST(records[2].burn_reason.find("no certificate was issued") != std::string::npos, records[2].burn_reason);
  BOOST_TEST(records[2].certificate.empty());
}

// The issued certificate is stored with the reservation: after a restart the ECU gets the same
// certificate back and its confirmation is accepted.
BOOST_AUTO_TEST_CASE(IssuedCertificateSurvivesARestart) {
  CertifyingPlant c(2);
  Ecu ecu(1);
  PackageView package = c.Reserve(ecu);
  auto issued = c.plant.RequestCertificate(kStation, package, ecu.uid, ecu.Csr(package.certificate_challenge));
  BOOST_REQUIRE(issued && issued->error == 0);
  c.plant.StopPks();
  c.plant.StartPks();
  auto again = c.plant.RequestCertificate(kStation, package, ecu.uid, ecu.Csr(package.certificate_challenge),
                                          "identity");
  BOOST_REQUIRE(again);
  BOOST_TEST(again->error == 0, again->message);
  BOOST_TEST(again->certificate == issued->certificate);
  c.plant.Report(kStation, package, ecu.uid, ecu.Confirm(*again));
  auto records = c.AwaitRecords(1);
  BOOST_TEST(records[0].injected, records[0].burn_reason);
  BOOST_TEST(records[0].certificate == issued->certificate);
}

// The issuing budget: a plant issues no more certificates than the KMS granted. At zero the
// package is refused before any key is handed out (stock untouched), with a clear error; a new
// grant lets the line go on, and a grant is applied once.
BOOST_AUTO_TEST_CASE(IssuingStopsAtZeroBudgetAndResumesAfterReplenishment) {
  CertifyingPlant c(5, /*grant=*/2);
  Ecu first(1), second(2), third(3);
  c.Provision(first);
  c.Provision(second);
  BOOST_REQUIRE(WaitUntil([&] { return c.Budget().issued == 2 && c.Budget().pending == 0; }));
  BOOST_TEST(c.Budget().available == 0u);

  auto refused = c.plant.Request(kStation, c.product.name, third.uid);
  BOOST_REQUIRE(refused);
  BOOST_TEST(refused->error == kBudgetExhausted, refused->message);
  BOOST_TEST(refused->message.find("issuing budget of OEM \"acme\"") != std::string::npos, refused->message);
  BOOST_TEST(refused->message.find("2 granted, 2 issued") != std::string::npos, refused->message);
  BOOST_TEST(refused->key_set_id.empty());
  BOOST_TEST(c.plant.pks().Snapshot().products[0].in_stock == 3u);
  BOOST_TEST(c.plant.pks().Snapshot().products[0].reserved == 0u);

  // Another plant's grant and a grant without an id change nothing.
  c.plant.GrantBudget("plant-b/acme/1", 50, "", "plant-b");
  c.plant.GrantBudget("", 50);
  // Replenished: one more, sent twice (at-least-once delivery): applied once.
  c.plant.GrantBudget("plant-a/acme/2", 1);
  c.plant.GrantBudget("plant-a/acme/2", 1);
  BOOST_REQUIRE(WaitUntil([&] { return c.Budget().granted == 3; }));
  c.Provision(third);
  BOOST_REQUIRE(WaitUntil([&] { return c.Budget().issued == 3 && c.Budget().pending == 0; }));
  BOOST_TEST(c.Budget().granted == 3u);
  auto records = c.AwaitRecords(3);
  for (const RecordView& r : records) BOOST_TEST(r.injected, r.burn_reason);

  // Spent again: refused again, and nothing issued beyond the grants, also after a restart.
  c.plant.StopPks();
  c.plant.StartPks();
  BOOST_TEST(c.Budget().granted == 3u);
  BOOST_TEST(c.Budget().issued == 3u);
  auto spent = c.plant.Request(kStation, c.product.name, PlantHarness::Uid(4));
  BOOST_REQUIRE(spent);
  BOOST_TEST(spent->error == kBudgetExhausted, spent->message);
}

// With a policy the plant asks by itself: below budget_min it asks the KMS for enough to reach
// budget_target (one request at a time, answered by the grant that echoes it); reservations
// waiting for their certificate hold budget; the plant's status reports the levels.
BOOST_AUTO_TEST_CASE(PlantAsksForMoreBudgetBelowItsMinimum) {
  CertifyingPlant c(6, /*grant=*/0, /*budget_min=*/2, /*budget_target=*/5);
  auto budget_requests = [&] {
    std::vector<std::pair<std::string, uint32_t>> out;
    for (const auto& r : c.plant.kms().Of(wire::MessageType::CertificateBudgetRequest)) {
      const auto* request = flatbuffers::GetRoot<wire::CertificateBudgetRequest>(r.payload.data());
      BOOST_TEST(schemas::Text(request->oem()) == "acme");
      out.emplace_back(std::string(schemas::Text(request->request_id())), request->count());
    }
    return out;
  };
  BOOST_REQUIRE(WaitUntil([&] { return budget_requests().size() == 1; }));
  BOOST_TEST(budget_requests()[0].second == 5u);
  BOOST_TEST(c.Budget().requested == 5u);
  auto refused = c.plant.Request(kStation, c.product.name, PlantHarness::Uid(1));
  BOOST_REQUIRE(refused);
  BOOST_TEST(refused->error == kBudgetExhausted, refused->message);
  BOOST_TEST(refused->message.find("more has been asked of the KMS") != std::string::npos, refused->message);

  c.plant.GrantBudget("plant-a/acme/1", 5, budget_requests()[0].first);
  BOOST_REQUIRE(WaitUntil([&] { return c.Budget().granted == 5 && c.Budget().requested == 0; }));
  // Three reservations hold three units: 2 left, not below the minimum yet.
  std::vector<PackageView> held;
  for (uint64_t n = 1; n <= 3; ++n) held.push_back(c.Reserve(Ecu(n)));
  BOOST_TEST(c.Budget().pending == 3u);
  BOOST_TEST(c.Budget().available == 2u);
  BOOST_TEST(budget_requests().size() == 1u);
  // The fourth leaves 1 < 2: the plant asks for 4 more (5 - 1).
  held.push_back(c.Reserve(Ecu(4)));
  BOOST_REQUIRE(WaitUntil([&] { return budget_requests().size() == 2; }));
  BOOST_TEST(budget_requests()[1].second == 4u);
  BOOST_TEST(budget_requests()[1].first != budget_requests()[0].first);
  // The KMS sees the levels in the PlantStatus.
  BOOST_REQUIRE(WaitUntil([&] {
    for (const auto& r : c.plant.kms().Of(wire::MessageType::PlantStatus)) {
      const auto* status = flatbuffers::GetRoot<wire::PlantStatus>(r.payload.data());
      if (status->certificate_budgets() != nullptr && status->certificate_budgets()->size() == 1 &&
          status->certificate_budgets()->Get(0)->granted() == 5) {
        return true;
      }
    }
    return false;
  }));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::pks::testing
