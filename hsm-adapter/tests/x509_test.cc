#include <boost/test/unit_test.hpp>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "keyline/hsm/software_custody.h"
#include "keyline/testing/temp_dir.h"
#include "x509_checks.h"

namespace keyline::hsm {
namespace {

using namespace keyline::hsm::testing;
using std::chrono::days;

std::unique_ptr<KeyCustody> NewCustody() { return KL_VALUE(CreateSoftwareCustody({})); }

std::chrono::sys_seconds Now() {
  return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}

std::vector<uint8_t> CsrDer(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               &BIO_free);
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(
      PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr), &X509_REQ_free);
  BOOST_REQUIRE(req);
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  BOOST_REQUIRE(len > 0);
  std::vector<uint8_t> out(der, der + len);
  OPENSSL_free(der);
  return out;
}

std::string AsText(const std::vector<uint8_t>& der) { return {der.begin(), der.end()}; }

BOOST_AUTO_TEST_SUITE(X509Tests)

BOOST_AUTO_TEST_CASE(RootPlantCaEcuChainVerifies) {
  auto ca = NewCustody();
  auto ecu = NewCustody();
  CheckIssuedChain(IssueChain(*ca, *ecu));
}

BOOST_AUTO_TEST_CASE(InspectCertificateReadsWhatEachLevelSays) {
  auto ca = NewCustody();
  IssuedChain c = IssueChain(*ca, *ca);
  CertificateInfo root = KL_VALUE(InspectCertificate(c.root));
  BOOST_TEST(root.is_ca);
  BOOST_TEST(root.self_signed);
  BOOST_TEST((root.subject == RootSubject()));
  BOOST_TEST((root.spki_der == KL_VALUE(ca->GetPublicKeyInfo(c.root_key))));
  CertificateInfo plant = KL_VALUE(InspectCertificate(c.plant));
  BOOST_TEST(plant.is_ca);
  BOOST_TEST(plant.path_length == 0);
  BOOST_TEST(!plant.self_signed);
  BOOST_TEST((plant.issuer == RootSubject()));
  BOOST_TEST((plant.validity.not_before <= Now()));
  BOOST_TEST((plant.validity.not_after > Now() + days(1800)));
  CertificateInfo ecu = KL_VALUE(InspectCertificate(c.ecu));
  BOOST_TEST(!ecu.is_ca);
  BOOST_TEST(ecu.serial_hex.size() >= 30u);
  BOOST_TEST((ecu.issuer == PlantSubject()));
  BOOST_TEST(!InspectCertificate("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n").ok());
}

// Another implementation's view: the openssl command line accepts the chain (strict, as a
// TLS client certificate) and the CSR's signature.
BOOST_AUTO_TEST_CASE(OpenSslCommandLineAcceptsChainAndCsr) {
  auto ca = NewCustody();
  IssuedChain c = IssueChain(*ca, *ca);
  std::string csr = KL_VALUE(MakeCsr(*ca, c.ecu_key, EcuProfile().subject, kChallenge));
  keyline::testing::TempDir dir;
  auto write = [&](const char* name, const std::string& pem) {
    std::ofstream(dir.path() / name) << pem;
    return (dir.path() / name).string();
  };
  std::string root = write("root.pem", c.root);
  std::string plant = write("plant.pem", c.plant);
  std::string ecu = write("ecu.pem", c.ecu);
  std::string request = write("csr.pem", csr);
  std::string verify = "openssl verify -x509_strict -purpose sslclient -CAfile " + root +
                       " -untrusted " + plant + " " + ecu + " >/dev/null";
  BOOST_TEST(std::system(verify.c_str()) == 0, verify);
  std::string wrong_root = "openssl verify -CAfile " + plant + " " + root + " >/dev/null 2>&1";
  BOOST_TEST(std::system(wrong_root.c_str()) != 0, wrong_root);
  std::string check_csr = "openssl req -in " + request + " -verify -noout 2>/dev/null";
  BOOST_TEST(std::system(check_csr.c_str()) == 0, check_csr);
}

// A product's usages reach the certificate; a name IssueEndEntity does not know is refused
// before anything is signed.
BOOST_AUTO_TEST_CASE(EndEntityUsagesFollowTheProfile) {
  auto ca = NewCustody();
  IssuedChain c = IssueChain(*ca, *ca);
  std::vector<uint8_t> spki = KL_VALUE(ca->GetPublicKeyInfo(c.ecu_key));
  EndEntityProfile profile = EcuProfile();
  profile.key_usage = {"digitalSignature", "keyAgreement"};
  profile.extended_key_usage = {"serverAuth", "clientAuth"};
  std::string pem = KL_VALUE(IssueEndEntity(*ca, c.plant_key, c.plant, spki, profile));
  auto cert = ParseForTest(pem);
  BOOST_TEST((X509_get_key_usage(cert.get()) == (KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT)));
  BOOST_TEST((X509_get_extended_key_usage(cert.get()) == (XKU_SSL_SERVER | XKU_SSL_CLIENT)));

  profile.extended_key_usage = {};
  cert = ParseForTest(KL_VALUE(IssueEndEntity(*ca, c.plant_key, c.plant, spki, profile)));
  BOOST_TEST(X509_get_extension_flags(cert.get()) & EXFLAG_KUSAGE);
  BOOST_TEST(!(X509_get_extension_flags(cert.get()) & EXFLAG_XKUSAGE));

  profile.key_usage = {"keyCertSign"};
  Status refused = IssueEndEntity(*ca, c.plant_key, c.plant, spki, profile).status();
  BOOST_TEST(refused.code() == StatusCode::kInvalidArgument);
  BOOST_TEST(refused.message().find("key usage \"keyCertSign\" is not one of") != std::string::npos,
             refused.message());
  BOOST_TEST(CheckEndEntityUsages({}, std::vector<std::string>{"codeSigning"}).code() ==
             StatusCode::kInvalidArgument);
}

// Issuing from a checked CSR (the key as CheckCsr read it, no key object made) gives the same
// certificate content as issuing from the key's SPKI: the ECU's key, chaining to the root.
BOOST_AUTO_TEST_CASE(IssueFromACheckedCsrCarriesTheCsrsKey) {
  auto ca = NewCustody();
  auto ecu = NewCustody();
  IssuedChain c = IssueChain(*ca, *ca);
  KeyHandle ecu_key = KL_VALUE(ecu->GenerateKey(KeyKind::kEcdsaP256));
  const std::vector<uint8_t> spki = KL_VALUE(ecu->GetPublicKeyInfo(ecu_key));
  CheckedCsr csr = KL_VALUE(CheckCsr(KL_VALUE(MakeCsr(*ecu, ecu_key, EcuProfile().subject, kChallenge)), kChallenge));
  BOOST_TEST((csr.spki_der == spki));
  BOOST_TEST(csr.public_point.size() == 65u);
  auto issuer = KL_VALUE(EndEntityIssuer::Prepare(*ca, c.plant_key, c.plant));
  for (const std::string& pem : {KL_VALUE(issuer->Issue(csr, EcuProfile())), KL_VALUE(issuer->Issue(spki, EcuProfile()))}) {
    CertificateInfo info = KL_VALUE(InspectCertificate(pem));
    BOOST_TEST((info.spki_der == spki));
    KL_REQUIRE_OK(VerifyChain(pem, std::vector<std::string>{c.plant}, c.root, Now()));
  }
  std::vector<uint8_t> not_a_key = spki;
  not_a_key.back() ^= 0x01;
  BOOST_TEST(issuer->Issue(not_a_key, EcuProfile()).status().code() == StatusCode::kInvalidArgument);
}

// The confirmation an ECU signs binds its UID and the PKS's challenge, under a fixed label.
BOOST_AUTO_TEST_CASE(ConfirmationMessageBindsUidAndChallenge) {
  std::vector<uint8_t> uid(15, 0x11), challenge(32, 0x22);
  std::vector<uint8_t> message = CertificateConfirmationMessage(uid, challenge);
  std::string label = "keyline-ecu-certificate-confirmation-v1";
  BOOST_TEST(message.size() == label.size() + 15 + 32);
  BOOST_TEST(std::string(message.begin(), message.begin() + label.size()) == label);
  std::vector<uint8_t> other_uid(15, 0x12);
  BOOST_TEST((CertificateConfirmationMessage(other_uid, challenge) != message));
  auto ecu = NewCustody();
  KeyHandle key = KL_VALUE(ecu->GenerateKey(KeyKind::kEcdsaP256));
  std::vector<uint8_t> signature = KL_VALUE(ecu->SignEcdsaSha256(key, message));
  std::vector<uint8_t> spki = KL_VALUE(ecu->GetPublicKeyInfo(key));
  BOOST_TEST(VerifyEcdsaSha256(spki, message, signature).ok());
  BOOST_TEST(VerifyEcdsaSha256(spki, CertificateConfirmationMessage(other_uid, challenge), signature)
                 .code() == StatusCode::kUnauthenticated);
}

BOOST_AUTO_TEST_CASE(LeafFromAnotherCaIsRefused) {
  auto ca = NewCustody();
  auto other_ca = NewCustody();
  IssuedChain ours = IssueChain(*ca, *ca);
  IssuedChain theirs = IssueChain(*other_ca, *other_ca);
  std::vector<std::string> our_chain{ours.plant};
  Status status = VerifyChain(theirs.ecu, our_chain, ours.root, Now());
  BOOST_TEST(status.code() == StatusCode::kUnauthenticated, status.ToString());
  std::vector<std::string> their_chain{theirs.plant};
  status = VerifyChain(theirs.ecu, their_chain, ours.root, Now());
  BOOST_TEST(status.code() == StatusCode::kUnauthenticated, status.ToString());
}

BOOST_AUTO_TEST_CASE(ExpiredCertificatesAreRefused) {
  auto ca = NewCustody();
  IssuedChain c = IssueChain(*ca, *ca);
  EndEntityProfile old = EcuProfile("ffeeddccbbaa99887766554433221100");
  old.not_before = Now() - days(400);
  old.validity_days = 30;
  std::string expired = KL_VALUE(IssueEndEntity(*ca, c.plant_key, c.plant,
                                                KL_VALUE(ca->GetPublicKeyInfo(c.ecu_key)), old));
  std::vector<std::string> chain{c.plant};
  Status status = VerifyChain(expired, chain, c.root, Now());
  BOOST_TEST(status.code() == StatusCode::kFailedPrecondition, status.ToString());
  BOOST_TEST(status.message().find("expired") != std::string::npos, status.ToString());
  // The good leaf outlives its issuing CA (5 years) only on paper.
  status = VerifyChain(c.ecu, chain, c.root, Now() + days(2000));
  BOOST_TEST(status.code() == StatusCode::kFailedPrecondition, status.ToString());
}

BOOST_AUTO_TEST_CASE(TamperedCsrIsRefused) {
  auto custody = NewCustody();
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kEcdsaP256));
  std::vector<uint8_t> der = CsrDer(KL_VALUE(MakeCsr(*custody, key, PlantSubject(), kChallenge)));
  KL_REQUIRE_OK(CheckCsr(AsText(der), kChallenge).status());

  // Another name under the requester's signature.
  std::vector<uint8_t> renamed = der;
  std::string unit = "Plant P1";
  auto at = std::search(renamed.begin(), renamed.end(), unit.begin(), unit.end());
  BOOST_REQUIRE(at != renamed.end());
  at[7] = '2';
  Status status = CheckCsr(AsText(renamed), kChallenge).status();
  BOOST_TEST(status.code() == StatusCode::kUnauthenticated, status.ToString());

  // A changed signature (its last byte is the last of the request).
  std::vector<uint8_t> resigned = der;
  resigned.back() ^= 0x01;
  status = CheckCsr(AsText(resigned), kChallenge).status();
  BOOST_TEST(status.code() == StatusCode::kUnauthenticated, status.ToString());

  BOOST_TEST(CheckCsr("not a request", kChallenge).status().code() == StatusCode::kInvalidArgument);
}

BOOST_AUTO_TEST_CASE(CsrForAnotherChallengeIsRefused) {
  auto custody = NewCustody();
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kEcdsaP256));
  std::string csr = KL_VALUE(MakeCsr(*custody, key, PlantSubject(), kChallenge));
  std::vector<uint8_t> other = kChallenge;
  other[0] ^= 0x01;
  Status status = CheckCsr(csr, other).status();
  BOOST_TEST(status.code() == StatusCode::kPermissionDenied, status.ToString());
  BOOST_TEST(status.message().find("challenge") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(IssuerKeyMustMatchACaCertificate) {
  auto ca = NewCustody();
  IssuedChain c = IssueChain(*ca, *ca);
  std::vector<uint8_t> spki = KL_VALUE(ca->GetPublicKeyInfo(c.ecu_key));
  // The root's key with the plant's certificate.
  Status status = IssueEndEntity(*ca, c.root_key, c.plant, spki, EcuProfile()).status();
  BOOST_TEST(status.code() == StatusCode::kFailedPrecondition, status.ToString());
  // An ECU certificate cannot issue.
  status = IssueEndEntity(*ca, c.ecu_key, c.ecu, spki, EcuProfile()).status();
  BOOST_TEST(status.code() == StatusCode::kFailedPrecondition, status.ToString());
  // A plant CA (pathlen 0) cannot certify another CA.
  CheckedCsr csr = KL_VALUE(CheckCsr(KL_VALUE(MakeCsr(*ca, c.ecu_key, PlantSubject(), kChallenge)), kChallenge));
  status = IssueCaCertificate(*ca, c.plant_key, c.plant, csr, ValidForDaysFromNow(10)).status();
  BOOST_TEST(status.code() == StatusCode::kFailedPrecondition, status.ToString());
  BOOST_TEST(status.message().find("pathlen 0") != std::string::npos, status.ToString());
  // Only P-256 keys sign certificates.
  KeyHandle ed = KL_VALUE(ca->GenerateKey(KeyKind::kEd25519));
  status = SelfSignCa(*ca, ed, RootSubject(), ValidForDaysFromNow(10)).status();
  BOOST_TEST(status.code() == StatusCode::kInvalidArgument, status.ToString());
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::hsm
