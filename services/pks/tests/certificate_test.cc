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
#include "plant_harness.h"

namespace keyline::pks::testing {
namespace {

constexpr char kStation[] = "line1-eol1";
constexpr int kCsrRefused = 8;    // wire::PackageErrorCode::CSR_REFUSED
constexpr int kNoIssuingCa = 9;   // wire::PackageErrorCode::NO_ISSUING_CA
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
  explicit CertifyingPlant(size_t stock) {
    product.certificate_slot = true;
    plant.StartPks();
    plant.Configure({product});
    plant.Ship(product.name, stock);
    plant.StartStation(kStation);
    root = plant.InstallIssuingCa({product});
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

// Without a (valid) issuing CA the PKS issues nothing, and a result without a confirmation, or
// with a wrong one, burns the key set; the record still lists an issued certificate.
BOOST_AUTO_TEST_CASE(RevokedCaIssuesNothingAndUnconfirmedCertificatesBurn) {
  CertifyingPlant c(4);
  Ecu confirmed_wrongly(1), unconfirmed(2), after_revoke(3);
  PackageView p1 = c.Reserve(confirmed_wrongly);
  PackageView p2 = c.Reserve(unconfirmed);
  auto issued1 = c.plant.RequestCertificate(kStation, p1, confirmed_wrongly.uid,
                                            confirmed_wrongly.Csr(p1.certificate_challenge));
  auto issued2 = c.plant.RequestCertificate(kStation, p2, unconfirmed.uid,
                                            unconfirmed.Csr(p2.certificate_challenge));
  BOOST_REQUIRE(issued1 && issued1->error == 0);
  BOOST_REQUIRE(issued2 && issued2->error == 0);

  // Revoked: the configuration no longer lists the CA.
  c.plant.Configure({c.product});
  BOOST_REQUIRE(WaitUntil([&] { return c.plant.pks().Snapshot().issuing_cas.empty(); }));
  PackageView p3 = c.Reserve(after_revoke);
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

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::pks::testing
