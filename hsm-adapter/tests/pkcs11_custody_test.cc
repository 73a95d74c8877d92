#include <boost/test/unit_test.hpp>

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "custody_checks.h"
#include "keyline/hsm/pkcs11_custody.h"
#include "keyline/hsm/software_custody.h"
#include "softhsm_fixture.h"
#include "x509_checks.h"

namespace keyline::hsm {
namespace {

using testing::TokenOptions;

std::unique_ptr<KeyCustody> OpenToken(const char* label) {
  return KL_VALUE(CreatePkcs11Custody(TokenOptions(label)));
}

std::string RandomHex(std::mt19937_64& rng, size_t bytes) {
  std::vector<uint8_t> data(bytes);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  return ToHex(data);
}

// A raw PKCS#11 session on a token, to look at what the custody left there.
class RawToken {
 public:
  explicit RawToken(const std::string& label) {
    void* module = ::dlopen(testing::kSoftHsmModule, RTLD_NOW | RTLD_LOCAL);
    BOOST_REQUIRE(module != nullptr);
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(module, "C_GetFunctionList"));
    BOOST_REQUIRE(get != nullptr && get(&f_) == CKR_OK);
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = f_->C_Initialize(&args);
    BOOST_REQUIRE(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED);
    CK_SLOT_ID slots[16];
    CK_ULONG count = 16;
    BOOST_REQUIRE(f_->C_GetSlotList(CK_TRUE, slots, &count) == CKR_OK);
    for (CK_ULONG i = 0; i < count; ++i) {
      CK_TOKEN_INFO info{};
      f_->C_GetTokenInfo(slots[i], &info);
      std::string text(reinterpret_cast<const char*>(info.label), 32);
      if (text.substr(0, label.size()) == label && text[label.size()] == ' ') {
        BOOST_REQUIRE(f_->C_OpenSession(slots[i], CKF_SERIAL_SESSION, nullptr, nullptr, &session_) == CKR_OK);
      }
    }
    BOOST_REQUIRE(session_ != CK_INVALID_HANDLE);
    char pin[] = "123456";
    rv = f_->C_Login(session_, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin), 6);
    BOOST_REQUIRE(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
  }
  ~RawToken() { f_->C_CloseSession(session_); }

  CK_OBJECT_HANDLE Find(CK_OBJECT_CLASS cls, const std::string& label) {
    CK_ATTRIBUTE query[] = {{CKA_CLASS, &cls, sizeof(cls)},
                            {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    BOOST_REQUIRE(f_->C_FindObjectsInit(session_, query, 2) == CKR_OK);
    CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;
    CK_ULONG count = 0;
    f_->C_FindObjects(session_, &object, 1, &count);
    f_->C_FindObjectsFinal(session_);
    BOOST_REQUIRE_MESSAGE(count == 1, "no object labelled " << label);
    return object;
  }
  bool Flag(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
    CK_BBOOL value = CK_FALSE;
    CK_ATTRIBUTE attr{type, &value, sizeof(value)};
    BOOST_REQUIRE(f_->C_GetAttributeValue(session_, object, &attr, 1) == CKR_OK);
    return value == CK_TRUE;
  }
  CK_RV ReadValue(CK_OBJECT_HANDLE object) {
    uint8_t buffer[128];
    CK_ATTRIBUTE attr{CKA_VALUE, buffer, sizeof(buffer)};
    return f_->C_GetAttributeValue(session_, object, &attr, 1);
  }

 private:
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

BOOST_AUTO_TEST_SUITE(Pkcs11CustodyTests)

BOOST_AUTO_TEST_CASE(Pkcs11BackendReproducesKnownAnswerVector) {
  auto token = OpenToken(testing::kTokenA);
  testing::CheckKnownAnswer(*token);
}

BOOST_AUTO_TEST_CASE(BackendsAgreeOnThousandRandomCases) {
  const uint64_t seed = 20261125;
  BOOST_TEST_MESSAGE("seed " << seed);
  std::mt19937_64 rng(seed);
  auto software = KL_VALUE(CreateSoftwareCustody({}));
  auto token = OpenToken(testing::kTokenA);
  for (int i = 0; i < 1000; ++i) {
    std::string auth_hex = RandomHex(rng, 16);
    std::string new_hex = RandomHex(rng, 16);
    SheLoadRequest sw_request;
    sw_request.fields.slot = static_cast<uint8_t>(rng() % 16);
    sw_request.fields.auth_slot = static_cast<uint8_t>(rng() % 16);
    sw_request.fields.counter = static_cast<uint32_t>(rng() % (kSheMaxCounter + 1));
    sw_request.flags = static_cast<uint8_t>(rng() % 32);
    for (uint8_t& b : sw_request.fields.uid) b = static_cast<uint8_t>(rng());
    sw_request.fields.uid[0] |= 1;  // never the wildcard
    SheLoadRequest p11_request = sw_request;
    sw_request.auth_key = KL_VALUE(software->ImportKeyFromHex(KeyKind::kAes128, auth_hex, "a"));
    sw_request.new_key = KL_VALUE(software->ImportKeyFromHex(KeyKind::kAes128, new_hex, "n"));
    p11_request.auth_key = KL_VALUE(token->ImportKeyFromHex(KeyKind::kAes128, auth_hex, "a"));
    p11_request.new_key = KL_VALUE(token->ImportKeyFromHex(KeyKind::kAes128, new_hex, "n"));

    SheLoadMessages sw = KL_VALUE(software->ComputeSheLoad(sw_request));
    SheLoadMessages p11 = KL_VALUE(token->ComputeSheLoad(p11_request));
    SheProof sw_proof = KL_VALUE(software->ComputeSheProof(sw_request.new_key, sw_request.fields));
    SheProof p11_proof = KL_VALUE(token->ComputeSheProof(p11_request.new_key, p11_request.fields));
    bool same = sw.m1 == p11.m1 && sw.m2 == p11.m2 && sw.m3 == p11.m3 &&
                sw_proof.m4 == p11_proof.m4 && sw_proof.m5 == p11_proof.m5;
    BOOST_TEST_REQUIRE(same, "case " << i << " (seed " << seed << ") differs");
    // Each backend accepts the other's proof.
    SheProofCheck check = KL_VALUE(token->CheckSheProof(p11_request.new_key, sw_proof));
    BOOST_TEST_REQUIRE(check.Proves(sw_request.fields.uid, sw_request.fields.slot,
                                    sw_request.fields.counter), "case " << i);
    for (KeyHandle h : {sw_request.auth_key, sw_request.new_key}) KL_REQUIRE_OK(software->DestroyKey(h));
    for (KeyHandle h : {p11_request.auth_key, p11_request.new_key}) KL_REQUIRE_OK(token->DestroyKey(h));
  }
}

BOOST_AUTO_TEST_CASE(StoredKeyUnwrapsInALaterSession) {
  WrappedKey blob;
  std::string kcv;
  {
    auto token = OpenToken(testing::kTokenA);
    KeyHandle key = KL_VALUE(token->GenerateKey(KeyKind::kAes128));
    kcv = ToHex(KL_VALUE(token->KeyCheckValue(key)));
    blob = KL_VALUE(token->WrapForStorage(key, "keyset/9/slot/1"));
  }
  auto token = OpenToken(testing::kTokenA);
  KeyHandle back = KL_VALUE(token->UnwrapFromStorage(blob, "keyset/9/slot/1"));
  BOOST_TEST(ToHex(KL_VALUE(token->KeyCheckValue(back))) == kcv);
  BOOST_TEST(token->UnwrapFromStorage(blob, "keyset/9/slot/2").status().code() == StatusCode::kDataLoss);
  // Another token has another KEK.
  auto other = OpenToken(testing::kTokenB);
  BOOST_TEST(other->UnwrapFromStorage(blob, "keyset/9/slot/1").status().code() ==
             StatusCode::kFailedPrecondition);
}

BOOST_AUTO_TEST_CASE(EveryFlippedBitOfAStoredKeyIsDetected) {
  auto token = OpenToken(testing::kTokenA);
  KeyHandle key = KL_VALUE(token->GenerateKey(KeyKind::kAes128));
  WrappedKey blob = KL_VALUE(token->WrapForStorage(key, "c"));
  for (size_t bit = 0; bit < blob.bytes.size() * 8; ++bit) {
    WrappedKey bad = blob;
    bad.bytes[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    BOOST_TEST_REQUIRE(!token->UnwrapFromStorage(bad, "c").ok(), "bit " << bit);
  }
}

BOOST_AUTO_TEST_CASE(NamedSigningKeyStaysOnTheTokenAndSigns) {
  PublicKey first;
  {
    auto token = OpenToken(testing::kTokenA);
    KeyHandle key = KL_VALUE(token->GetOrCreateNamedKey("pks-signing", KeyKind::kEd25519));
    first = KL_VALUE(token->GetPublicKey(key));
    BOOST_TEST(token->WrapForStorage(key, "c").status().code() == StatusCode::kUnimplemented);
  }
  auto token = OpenToken(testing::kTokenA);
  KeyHandle key = KL_VALUE(token->GetOrCreateNamedKey("pks-signing", KeyKind::kEd25519));
  BOOST_TEST((KL_VALUE(token->GetPublicKey(key)) == first));
  std::vector<uint8_t> record = {'r', 'e', 'c'};
  Signature signature = KL_VALUE(token->Sign(key, record));
  KL_REQUIRE_OK(VerifySignature(first, record, signature));
  record[0] ^= 1;
  BOOST_TEST(VerifySignature(first, record, signature).code() == StatusCode::kUnauthenticated);
  Signature on_empty = KL_VALUE(token->Sign(key, std::vector<uint8_t>{}));
  KL_REQUIRE_OK(VerifySignature(first, std::vector<uint8_t>{}, on_empty));
}

BOOST_AUTO_TEST_CASE(KeySetFromSoftwareKmsOpensOnTokenOfPlantAOnly) {
  auto kms = KL_VALUE(CreateSoftwareCustody({}));
  auto plant_a = OpenToken(testing::kTokenA);
  auto plant_b = OpenToken(testing::kTokenB);
  KeyHandle a_key = KL_VALUE(plant_a->GetOrCreateNamedKey("plant", KeyKind::kX25519));
  KeyHandle b_key = KL_VALUE(plant_b->GetOrCreateNamedKey("plant", KeyKind::kX25519));
  std::vector<KeyHandle> keys = {KL_VALUE(kms->GenerateKey(KeyKind::kAes128)),
                                 KL_VALUE(kms->GenerateKey(KeyKind::kAes128))};
  WrappedKeySet set = KL_VALUE(kms->WrapForPeer(keys, KL_VALUE(plant_a->GetPublicKey(a_key)), "batch/1"));
  std::vector<KeyHandle> opened = KL_VALUE(plant_a->UnwrapFromPeer(a_key, set, "batch/1"));
  BOOST_REQUIRE(opened.size() == 2u);
  for (size_t i = 0; i < 2; ++i) {
    BOOST_TEST(ToHex(KL_VALUE(plant_a->KeyCheckValue(opened[i]))) ==
               ToHex(KL_VALUE(kms->KeyCheckValue(keys[i]))));
  }
  BOOST_TEST(plant_b->UnwrapFromPeer(b_key, set, "batch/1").status().code() ==
             StatusCode::kPermissionDenied);
  // And back: the token wraps for a software peer.
  auto software_peer = KL_VALUE(CreateSoftwareCustody({}));
  KeyHandle peer_key = KL_VALUE(software_peer->GenerateKey(KeyKind::kX25519));
  WrappedKeySet back = KL_VALUE(plant_a->WrapForPeer(opened, KL_VALUE(software_peer->GetPublicKey(peer_key)), "x"));
  BOOST_TEST(KL_VALUE(software_peer->UnwrapFromPeer(peer_key, back, "x")).size() == 2u);
}

BOOST_AUTO_TEST_CASE(WrongPinIsAClearError) {
  Pkcs11CustodyOptions options = TokenOptions(testing::kTokenB);
  ::setenv("KEYLINE_TEST_WRONG_PIN", "000000", 1);
  options.pin_env_var = "KEYLINE_TEST_WRONG_PIN";
  auto result = CreatePkcs11Custody(options);
  BOOST_TEST(result.status().code() == StatusCode::kUnauthenticated);
  BOOST_TEST(result.status().message().find("wrong PIN") != std::string::npos);
  BOOST_TEST(result.status().message().find("000000") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(UnknownTokenNamesTheTokensPresent) {
  auto result = CreatePkcs11Custody(TokenOptions("no-such-token"));
  BOOST_TEST(result.status().code() == StatusCode::kNotFound);
  BOOST_TEST(result.status().message().find("'plant-a'") != std::string::npos,
             result.status().message());
}

BOOST_AUTO_TEST_CASE(PinMustComeFromExactlyOneSource) {
  Pkcs11CustodyOptions options = TokenOptions(testing::kTokenA);
  options.pin_env_var.reset();
  BOOST_TEST(CreatePkcs11Custody(options).status().code() == StatusCode::kInvalidArgument);
  keyline::testing::TempDir dir;
  std::ofstream(dir.path() / "pin") << "123456\n";
  options.pin_file = dir.path() / "pin";
  BOOST_TEST(CreatePkcs11Custody(options).ok());
}

BOOST_AUTO_TEST_CASE(MissingModuleIsAClearError) {
  Pkcs11CustodyOptions options = TokenOptions(testing::kTokenA);
  options.module_path = "/nonexistent/libpkcs11.so";
  auto result = CreatePkcs11Custody(options);
  BOOST_TEST(result.status().code() == StatusCode::kNotFound);
  BOOST_TEST(result.status().message().find("/nonexistent/libpkcs11.so") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(LimitationsAreStatedNotHidden) {
  auto token = OpenToken(testing::kTokenA);
  CustodyInfo info = token->Info();
  BOOST_TEST(info.backend == "pkcs11");
  BOOST_TEST(info.limitations.size() == 3u);
  BOOST_TEST(info.description.find("plant-a") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(KekAndSigningKeyCannotLeaveTheToken) {
  auto token = OpenToken(testing::kTokenB);
  KL_VALUE(token->GetOrCreateNamedKey("records", KeyKind::kEd25519));
  KL_VALUE(token->GetOrCreateNamedKey("plant-ca", KeyKind::kEcdsaP256));
  RawToken raw(testing::kTokenB);
  for (auto [cls, label] : {std::pair<CK_OBJECT_CLASS, std::string>{CKO_SECRET_KEY, "keyline.kek"},
                            {CKO_SECRET_KEY, "keyline.kek-mac"},
                            {CKO_PRIVATE_KEY, "keyline.named.ed25519.records"},
                            {CKO_PRIVATE_KEY, "keyline.named.ecdsa-p256.plant-ca"}}) {
    CK_OBJECT_HANDLE object = raw.Find(cls, label);
    BOOST_TEST(!raw.Flag(object, CKA_EXTRACTABLE), label);
    BOOST_TEST(raw.Flag(object, CKA_SENSITIVE), label);
    BOOST_TEST(raw.ReadValue(object) == CKR_ATTRIBUTE_SENSITIVE, label);
  }
}

BOOST_AUTO_TEST_CASE(MissingMechanismIsNamedAtStartUp) {
  Pkcs11CustodyOptions options = TokenOptions(testing::kTokenA);
  options.module_path = FILTERING_PKCS11_MODULE;
  auto result = CreatePkcs11Custody(options);
  BOOST_TEST(result.status().code() == StatusCode::kFailedPrecondition);
  BOOST_TEST(result.status().message() ==
             "PKCS#11 token 'plant-a' lacks CKM_AES_CMAC (needed for SHE M3 and M5)");
}

BOOST_AUTO_TEST_CASE(EcdsaKeyOnTheTokenSignsVerifiably) {
  auto token = OpenToken(testing::kTokenA);
  KeyHandle key = KL_VALUE(token->GenerateKey(KeyKind::kEcdsaP256));
  std::vector<uint8_t> spki = KL_VALUE(token->GetPublicKeyInfo(key));
  std::vector<uint8_t> message = {'t', 'b', 's'};
  std::vector<uint8_t> signature = KL_VALUE(token->SignEcdsaSha256(key, message));
  KL_REQUIRE_OK(VerifyEcdsaSha256(spki, message, signature));
  message[0] ^= 1;
  BOOST_TEST(VerifyEcdsaSha256(spki, message, signature).code() == StatusCode::kUnauthenticated);
  KL_REQUIRE_OK(VerifyEcdsaSha256(spki, std::vector<uint8_t>{},
                                  KL_VALUE(token->SignEcdsaSha256(key, std::vector<uint8_t>{}))));

  BOOST_TEST(token->WrapForStorage(key, "c").status().code() == StatusCode::kUnimplemented);
  BOOST_TEST(token->GetPublicKey(key).status().code() == StatusCode::kInvalidArgument);
  BOOST_TEST(token->ImportKeyFromHex(KeyKind::kEcdsaP256, std::string(64, '1'), "ca").status().code() ==
             StatusCode::kUnimplemented);
  KeyHandle ed = KL_VALUE(token->GenerateKey(KeyKind::kEd25519));
  BOOST_TEST(token->SignEcdsaSha256(ed, message).status().code() == StatusCode::kInvalidArgument);
  BOOST_TEST(token->GetPublicKeyInfo(ed).status().code() == StatusCode::kInvalidArgument);
  KL_REQUIRE_OK(token->DestroyKey(key));
  BOOST_TEST(token->SignEcdsaSha256(key, message).status().code() == StatusCode::kNotFound);
}

BOOST_AUTO_TEST_CASE(NamedEcdsaKeyIsTheSameInALaterSession) {
  std::vector<uint8_t> first;
  {
    auto token = OpenToken(testing::kTokenA);
    first = KL_VALUE(token->GetPublicKeyInfo(
        KL_VALUE(token->GetOrCreateNamedKey("issuing-ca", KeyKind::kEcdsaP256))));
  }
  auto token = OpenToken(testing::kTokenA);
  KeyHandle key = KL_VALUE(token->GetOrCreateNamedKey("issuing-ca", KeyKind::kEcdsaP256));
  BOOST_TEST((KL_VALUE(token->GetPublicKeyInfo(key)) == first));
  std::vector<uint8_t> message = {'m'};
  KL_REQUIRE_OK(VerifyEcdsaSha256(first, message, KL_VALUE(token->SignEcdsaSha256(key, message))));
}

BOOST_AUTO_TEST_CASE(TokenHeldCaKeysIssueAVerifiableChain) {
  auto token = OpenToken(testing::kTokenA);
  auto ecu = KL_VALUE(CreateSoftwareCustody({}));
  testing::CheckIssuedChain(testing::IssueChain(*token, *ecu));
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::hsm
