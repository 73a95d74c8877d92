// X.509 checks every backend must pass, shared by hsm_test (software) and hsm_pkcs11_test.
#pragma once

#include <boost/test/unit_test.hpp>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

#include "custody_checks.h"
#include "keyline/hsm/x509.h"

namespace keyline::hsm::testing {

inline const std::vector<uint8_t> kChallenge = {0x6b, 0x65, 0x79, 0x6c, 0x69, 0x6e, 0x65, 0x21};

inline CertificateSubject RootSubject() { return {"DE", "Example Motors", "", "Example Motors Lab Root", ""}; }
inline CertificateSubject PlantSubject() { return {"DE", "Example Motors", "Plant P1", "Plant P1 Issuing CA", ""}; }
inline EndEntityProfile EcuProfile(std::string uid_hex = "000102030405060708090a0b0c0d0e0f") {
  EndEntityProfile profile;
  profile.subject = {"", "Example Motors", "", "ECU", std::move(uid_hex)};
  profile.validity_days = 365;
  profile.extended_key_usage = {"clientAuth"};
  return profile;
}

struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
inline std::unique_ptr<X509, X509Free> ParseForTest(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                               &BIO_free);
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  BOOST_REQUIRE(cert);
  return cert;
}

// A lab root (in `ca_custody`), a plant issuing CA whose key is in `ca_custody` and was
// certified from its CSR, and an ECU certificate for a key held in `ecu_custody`.
struct IssuedChain {
  KeyHandle root_key, plant_key, ecu_key;
  std::string root, plant, ecu;
};

inline IssuedChain IssueChain(KeyCustody& ca_custody, KeyCustody& ecu_custody) {
  IssuedChain c;
  c.root_key = KL_VALUE(ca_custody.GenerateKey(KeyKind::kEcdsaP256));
  c.root = KL_VALUE(SelfSignCa(ca_custody, c.root_key, RootSubject(), ValidForDaysFromNow(3650)));
  c.plant_key = KL_VALUE(ca_custody.GenerateKey(KeyKind::kEcdsaP256));
  std::string csr = KL_VALUE(MakeCsr(ca_custody, c.plant_key, PlantSubject(), kChallenge));
  CheckedCsr checked = KL_VALUE(CheckCsr(csr, kChallenge));
  BOOST_TEST((checked.subject == PlantSubject()));
  BOOST_TEST((checked.spki_der == KL_VALUE(ca_custody.GetPublicKeyInfo(c.plant_key))));
  c.plant = KL_VALUE(IssueCaCertificate(ca_custody, c.root_key, c.root, checked, ValidForDaysFromNow(1825)));
  c.ecu_key = KL_VALUE(ecu_custody.GenerateKey(KeyKind::kEcdsaP256));
  c.ecu = KL_VALUE(IssueEndEntity(ca_custody, c.plant_key, c.plant,
                                  KL_VALUE(ecu_custody.GetPublicKeyInfo(c.ecu_key)), EcuProfile()));
  return c;
}

// The chain verifies, and each certificate says what its role needs.
inline void CheckIssuedChain(const IssuedChain& c) {
  auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  std::vector<std::string> chain{c.plant};
  KL_REQUIRE_OK(VerifyChain(c.ecu, chain, c.root, now));
  BOOST_TEST((KL_VALUE(SubjectOf(c.ecu)) == EcuProfile().subject));

  auto root = ParseForTest(c.root);
  auto plant = ParseForTest(c.plant);
  auto ecu = ParseForTest(c.ecu);
  BOOST_TEST(X509_check_ca(plant.get()) == 1);
  BOOST_TEST(X509_get_pathlen(plant.get()) == 0);
  BOOST_TEST((X509_get_key_usage(plant.get()) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) ==
             (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  BOOST_TEST(X509_check_ca(ecu.get()) == 0);
  BOOST_TEST(X509_get_key_usage(ecu.get()) == static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  BOOST_TEST(X509_get_extended_key_usage(ecu.get()) == static_cast<uint32_t>(XKU_SSL_CLIENT));
  BOOST_TEST(ASN1_STRING_length(X509_get0_serialNumber(ecu.get())) == 16);
  BOOST_TEST(ASN1_STRING_cmp(X509_get0_serialNumber(ecu.get()), X509_get0_serialNumber(plant.get())) != 0);
  BOOST_REQUIRE(X509_get0_authority_key_id(ecu.get()) != nullptr);
  BOOST_TEST(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(ecu.get()),
                                   X509_get0_subject_key_id(plant.get())) == 0);
  BOOST_TEST(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(plant.get()),
                                   X509_get0_subject_key_id(root.get())) == 0);
  BOOST_TEST(X509_get_signature_nid(ecu.get()) == NID_ecdsa_with_SHA256);
}

}  // namespace keyline::hsm::testing
