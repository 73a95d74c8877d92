#include <boost/test/unit_test.hpp>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <atomic>
#include <fstream>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "custody_checks.h"
#include "keyline/hsm/software_custody.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::hsm {
namespace {

using keyline::testing::TempDir;

// Argon2id at libsodium's minimum cost keeps the tests fast (the cost is a file parameter).
MasterKeyFileOptions CheapPassphrase(std::filesystem::path passphrase_file) {
  MasterKeyFileOptions options;
  options.passphrase.file = std::move(passphrase_file);
  options.argon2_opslimit = 1;
  options.argon2_memlimit = 8192;
  return options;
}

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), 0600);
}

std::unique_ptr<KeyCustody> OpenWithNewMasterKey(const TempDir& dir, const std::string& name = "master.key") {
  auto path = dir.path() / name;
  KL_REQUIRE_OK(CreateMasterKeyFile(path, {}));
  SoftwareCustodyOptions options;
  options.master_key_file = path;
  return KL_VALUE(CreateSoftwareCustody(options));
}

std::string Kcv(KeyCustody& custody, KeyHandle key) {
  return ToHex(KL_VALUE(custody.KeyCheckValue(key)));
}

BOOST_AUTO_TEST_SUITE(SoftwareCustodyTests)

BOOST_AUTO_TEST_CASE(StoredKeyUnwrapsToTheSameKey) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  WrappedKey blob = KL_VALUE(custody->WrapForStorage(key, "keyset/1/slot/1"));
  KeyHandle back = KL_VALUE(custody->UnwrapFromStorage(blob, "keyset/1/slot/1"));
  BOOST_TEST(back.id != key.id);
  BOOST_TEST(Kcv(*custody, back) == Kcv(*custody, key));
}

BOOST_AUTO_TEST_CASE(KeysWrappedManyAtOnceUnwrapOneByOne) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  std::vector<KeyHandle> keys;
  std::vector<std::string> contexts;
  for (int i = 0; i < 5; ++i) {
    keys.push_back(KL_VALUE(custody->GenerateKey(KeyKind::kAes128)));
    contexts.push_back("keyset/b." + std::to_string(i) + "/slot/1");
  }
  std::vector<WrappedKey> blobs = KL_VALUE(custody->WrapManyForStorage(keys, contexts));
  BOOST_REQUIRE_EQUAL(blobs.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    KeyHandle back = KL_VALUE(custody->UnwrapFromStorage(blobs[i], contexts[i]));
    BOOST_TEST(Kcv(*custody, back) == Kcv(*custody, keys[i]));
    // Each blob is bound to its own context, and no two share a nonce.
    BOOST_TEST(custody->UnwrapFromStorage(blobs[i], contexts[(i + 1) % keys.size()]).status().code() ==
               StatusCode::kDataLoss);
    for (size_t j = 0; j < i; ++j) BOOST_TEST(blobs[i].bytes != blobs[j].bytes);
  }
}

BOOST_AUTO_TEST_CASE(WrapManyIsAllOrNothing) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  KeyHandle good = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  KeyHandle gone = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  KL_REQUIRE_OK(custody->DestroyKey(gone));
  std::vector<KeyHandle> keys = {good, gone};
  std::vector<std::string> contexts = {"a", "b"};
  BOOST_TEST(custody->WrapManyForStorage(keys, contexts).status().code() == StatusCode::kNotFound);
  std::vector<std::string> one_context = {"a"};
  BOOST_TEST(custody->WrapManyForStorage(keys, one_context).status().code() ==
             StatusCode::kInvalidArgument);
}

BOOST_AUTO_TEST_CASE(StoredKeyPairsKeepTheirPublicKeys) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  for (KeyKind kind : {KeyKind::kEd25519, KeyKind::kX25519}) {
    KeyHandle key = KL_VALUE(custody->GenerateKey(kind));
    WrappedKey blob = KL_VALUE(custody->WrapForStorage(key, "pair"));
    KeyHandle back = KL_VALUE(custody->UnwrapFromStorage(blob, "pair"));
    BOOST_TEST((back.kind == kind));
    BOOST_TEST((KL_VALUE(custody->GetPublicKey(back)) == KL_VALUE(custody->GetPublicKey(key))));
  }
}

BOOST_AUTO_TEST_CASE(ConcurrentCallersGetConsistentAnswers) {
  auto custody = KL_VALUE(CreateSoftwareCustody({}));
  KeyHandle auth = KL_VALUE(custody->ImportKeyFromHex(KeyKind::kAes128, testing::kKatAuthKey, "a"));
  KeyHandle fresh = KL_VALUE(custody->ImportKeyFromHex(KeyKind::kAes128, testing::kKatNewKey, "n"));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        auto m = custody->ComputeSheLoad({auth, fresh, testing::KatFields(), 0});
        auto key = custody->GenerateKey(KeyKind::kAes128);
        if (!m.ok() || ToHex(m->m3) != testing::kKatM3 || !key.ok() ||
            !custody->DestroyKey(*key).ok()) {
          ++wrong;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  BOOST_TEST(wrong.load() == 0);
}

BOOST_AUTO_TEST_CASE(KeyCheckValueMatchesTheStandardDefinition) {
  auto custody = KL_VALUE(CreateSoftwareCustody({}));
  // AES-128(key 000102..0f, 0^128) = c6a13b37878f5b826f4f8162a1c8d879.
  KeyHandle key = KL_VALUE(custody->ImportKeyFromHex(KeyKind::kAes128, testing::kKatAuthKey, "k"));
  BOOST_TEST(Kcv(*custody, key) == "c6a13b");
}

BOOST_AUTO_TEST_CASE(StoredKeyNeedsTheSameContext) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  WrappedKey blob = KL_VALUE(custody->WrapForStorage(key, "keyset/1/slot/1"));
  auto other = custody->UnwrapFromStorage(blob, "keyset/1/slot/2");
  BOOST_TEST(other.status().code() == StatusCode::kDataLoss);
}

BOOST_AUTO_TEST_CASE(StoredKeyNeedsTheSameMasterKey) {
  TempDir dir;
  auto first = OpenWithNewMasterKey(dir, "a.key");
  auto second = OpenWithNewMasterKey(dir, "b.key");
  KeyHandle key = KL_VALUE(first->GenerateKey(KeyKind::kAes128));
  WrappedKey blob = KL_VALUE(first->WrapForStorage(key, "c"));
  auto result = second->UnwrapFromStorage(blob, "c");
  BOOST_TEST(result.status().code() == StatusCode::kFailedPrecondition);
  BOOST_TEST(result.status().message().find("KEK") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(EveryFlippedBitOfAStoredKeyIsDetected) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  WrappedKey blob = KL_VALUE(custody->WrapForStorage(key, "c"));
  for (size_t bit = 0; bit < blob.bytes.size() * 8; ++bit) {
    WrappedKey bad = blob;
    bad.bytes[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    BOOST_TEST_REQUIRE(!custody->UnwrapFromStorage(bad, "c").ok(), "bit " << bit);
  }
  for (size_t size = 0; size < blob.bytes.size(); ++size) {
    WrappedKey truncated{std::vector<uint8_t>(blob.bytes.begin(), blob.bytes.begin() + size)};
    BOOST_TEST_REQUIRE(!custody->UnwrapFromStorage(truncated, "c").ok(), "size " << size);
  }
}

BOOST_AUTO_TEST_CASE(NamedKeysSurviveReopening) {
  TempDir dir;
  auto path = dir.path() / "master.key";
  KL_REQUIRE_OK(CreateMasterKeyFile(path, {}));
  SoftwareCustodyOptions options;
  options.master_key_file = path;
  PublicKey first_signing;
  PublicKey first_agreement;
  {
    auto custody = KL_VALUE(CreateSoftwareCustody(options));
    first_signing = KL_VALUE(custody->GetPublicKey(KL_VALUE(custody->GetOrCreateNamedKey("pks", KeyKind::kEd25519))));
    first_agreement = KL_VALUE(custody->GetPublicKey(KL_VALUE(custody->GetOrCreateNamedKey("pks", KeyKind::kX25519))));
  }
  auto custody = KL_VALUE(CreateSoftwareCustody(options));
  KeyHandle signing = KL_VALUE(custody->GetOrCreateNamedKey("pks", KeyKind::kEd25519));
  BOOST_TEST((KL_VALUE(custody->GetPublicKey(signing)) == first_signing));
  BOOST_TEST((KL_VALUE(custody->GetPublicKey(
                  KL_VALUE(custody->GetOrCreateNamedKey("pks", KeyKind::kX25519)))) == first_agreement));
  BOOST_TEST(!(KL_VALUE(custody->GetPublicKey(
                   KL_VALUE(custody->GetOrCreateNamedKey("other", KeyKind::kEd25519)))) == first_signing));
}

BOOST_AUTO_TEST_CASE(SignaturesVerifyAndRejectOtherMessages) {
  auto custody = KL_VALUE(CreateSoftwareCustody({}));
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kEd25519));
  PublicKey pub = KL_VALUE(custody->GetPublicKey(key));
  std::vector<uint8_t> record = {1, 2, 3, 4};
  Signature signature = KL_VALUE(custody->Sign(key, record));
  KL_REQUIRE_OK(VerifySignature(pub, record, signature));
  record[0] ^= 1;
  BOOST_TEST(VerifySignature(pub, record, signature).code() == StatusCode::kUnauthenticated);
  std::vector<uint8_t> empty;
  Signature on_empty = KL_VALUE(custody->Sign(key, empty));
  KL_REQUIRE_OK(VerifySignature(pub, empty, on_empty));
}

BOOST_AUTO_TEST_CASE(Ed25519SeedImportMatchesRfc8032) {
  auto custody = KL_VALUE(CreateSoftwareCustody({}));
  // RFC 8032 section 7.1, test 1.
  KeyHandle key = KL_VALUE(custody->ImportKeyFromHex(
      KeyKind::kEd25519, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "seed"));
  PublicKey pub = KL_VALUE(custody->GetPublicKey(key));
  BOOST_TEST(ToHex(pub.bytes) == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  Signature signature = KL_VALUE(custody->Sign(key, std::vector<uint8_t>{}));
  BOOST_TEST(ToHex(signature) ==
             "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
             "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
}

BOOST_AUTO_TEST_CASE(KeySetWrappedForPeerOpensThereInOrder) {
  auto kms = KL_VALUE(CreateSoftwareCustody({}));
  auto plant = KL_VALUE(CreateSoftwareCustody({}));
  KeyHandle plant_key = KL_VALUE(plant->GenerateKey(KeyKind::kX25519));
  PublicKey plant_pub = KL_VALUE(plant->GetPublicKey(plant_key));
  std::vector<KeyHandle> keys;
  std::vector<std::string> kcvs;
  for (int i = 0; i < 5; ++i) {
    keys.push_back(KL_VALUE(kms->GenerateKey(KeyKind::kAes128)));
    kcvs.push_back(Kcv(*kms, keys.back()));
  }
  WrappedKeySet set = KL_VALUE(kms->WrapForPeer(keys, plant_pub, "stock-batch/1"));
  std::vector<KeyHandle> opened = KL_VALUE(plant->UnwrapFromPeer(plant_key, set, "stock-batch/1"));
  BOOST_REQUIRE(opened.size() == keys.size());
  for (size_t i = 0; i < opened.size(); ++i) BOOST_TEST(Kcv(*plant, opened[i]) == kcvs[i]);
  auto wrong_context = plant->UnwrapFromPeer(plant_key, set, "stock-batch/2");
  BOOST_TEST(wrong_context.status().code() == StatusCode::kPermissionDenied);
}

BOOST_AUTO_TEST_CASE(KeySetForPlantACannotBeOpenedByPlantB) {
  auto kms = KL_VALUE(CreateSoftwareCustody({}));
  auto plant_a = KL_VALUE(CreateSoftwareCustody({}));
  auto plant_b = KL_VALUE(CreateSoftwareCustody({}));
  KeyHandle a_key = KL_VALUE(plant_a->GenerateKey(KeyKind::kX25519));
  KeyHandle b_key = KL_VALUE(plant_b->GenerateKey(KeyKind::kX25519));
  KeyHandle key = KL_VALUE(kms->GenerateKey(KeyKind::kAes128));
  WrappedKeySet set =
      KL_VALUE(kms->WrapForPeer({&key, 1}, KL_VALUE(plant_a->GetPublicKey(a_key)), "batch"));
  auto refused = plant_b->UnwrapFromPeer(b_key, set, "batch");
  BOOST_TEST(refused.status().code() == StatusCode::kPermissionDenied);
  // Even with the header rewritten to name plant B, the sealed box does not open.
  WrappedKeySet forged = set;
  WrappedKeySet for_b = KL_VALUE(kms->WrapForPeer({&key, 1}, KL_VALUE(plant_b->GetPublicKey(b_key)), "batch"));
  std::copy(for_b.bytes.begin() + 5, for_b.bytes.begin() + 13, forged.bytes.begin() + 5);
  BOOST_TEST(plant_b->UnwrapFromPeer(b_key, forged, "batch").status().code() == StatusCode::kDataLoss);
  BOOST_TEST(plant_a->UnwrapFromPeer(a_key, set, "batch").ok());
}

BOOST_AUTO_TEST_CASE(EveryFlippedBitOfAKeySetIsDetected) {
  auto kms = KL_VALUE(CreateSoftwareCustody({}));
  auto plant = KL_VALUE(CreateSoftwareCustody({}));
  KeyHandle plant_key = KL_VALUE(plant->GenerateKey(KeyKind::kX25519));
  std::vector<KeyHandle> keys = {KL_VALUE(kms->GenerateKey(KeyKind::kAes128)),
                                 KL_VALUE(kms->GenerateKey(KeyKind::kAes128))};
  WrappedKeySet set = KL_VALUE(kms->WrapForPeer(keys, KL_VALUE(plant->GetPublicKey(plant_key)), "b"));
  for (size_t bit = 0; bit < set.bytes.size() * 8; ++bit) {
    WrappedKeySet bad = set;
    bad.bytes[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    BOOST_TEST_REQUIRE(!plant->UnwrapFromPeer(plant_key, bad, "b").ok(), "bit " << bit);
  }
}

BOOST_AUTO_TEST_CASE(WithoutMasterKeyStorageIsRefusedClearly) {
  auto custody = KL_VALUE(CreateSoftwareCustody({}));
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  auto result = custody->WrapForStorage(key, "c");
  BOOST_TEST(result.status().code() == StatusCode::kFailedPrecondition);
  BOOST_TEST(result.status().message().find("master key") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(HandlesFromAnotherCustodyOrDestroyedAreRefused) {
  auto first = KL_VALUE(CreateSoftwareCustody({}));
  auto second = KL_VALUE(CreateSoftwareCustody({}));
  KeyHandle key = KL_VALUE(first->GenerateKey(KeyKind::kAes128));
  BOOST_TEST(second->KeyCheckValue(key).status().code() == StatusCode::kInvalidArgument);
  KL_REQUIRE_OK(first->DestroyKey(key));
  BOOST_TEST(first->KeyCheckValue(key).status().code() == StatusCode::kNotFound);
  KeyHandle signing = KL_VALUE(first->GenerateKey(KeyKind::kEd25519));
  BOOST_TEST(!first->KeyCheckValue(signing).ok());
}

BOOST_AUTO_TEST_CASE(ScopedKeyDestroysOnExit) {
  auto custody = KL_VALUE(CreateSoftwareCustody({}));
  KeyHandle handle;
  {
    ScopedKey key(custody.get(), KL_VALUE(custody->GenerateKey(KeyKind::kAes128)));
    handle = key.get();
    BOOST_TEST(custody->KeyCheckValue(handle).ok());
  }
  BOOST_TEST(custody->KeyCheckValue(handle).status().code() == StatusCode::kNotFound);
}

BOOST_AUTO_TEST_CASE(BadHexIsRefusedWithoutEchoingDigits) {
  auto custody = KL_VALUE(CreateSoftwareCustody({}));
  auto bad = custody->ImportKeyFromHex(KeyKind::kAes128, "0f0e0d0c0b0a0908070605040302010z", "--new-key");
  BOOST_TEST(bad.status().code() == StatusCode::kInvalidArgument);
  BOOST_TEST(bad.status().message() == "--new-key: character at position 32 is not a hex digit");
  auto short_key = custody->ImportKeyFromHex(KeyKind::kAes128, "0f0e0d", "--new-key");
  BOOST_TEST(short_key.status().message() ==
             "--new-key: expected 16 bytes (32 hex digits), got 6 hex digits");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(MasterKeyFileTests)

BOOST_AUTO_TEST_CASE(PassphraseProtectedKeyOpensWithTheRightPassphrase) {
  TempDir dir;
  WriteFile(dir.path() / "pass", "correct horse battery staple\n");
  auto path = dir.path() / "master.key";
  KL_REQUIRE_OK(CreateMasterKeyFile(path, CheapPassphrase(dir.path() / "pass")));
  SoftwareCustodyOptions options;
  options.master_key_file = path;
  options.passphrase.file = dir.path() / "pass";
  auto custody = KL_VALUE(CreateSoftwareCustody(options));
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  WrappedKey blob = KL_VALUE(custody->WrapForStorage(key, "c"));
  auto reopened = KL_VALUE(CreateSoftwareCustody(options));
  BOOST_TEST(reopened->UnwrapFromStorage(blob, "c").ok());

  ::setenv("KEYLINE_TEST_PASSPHRASE", "correct horse battery staple", 1);
  SoftwareCustodyOptions from_env;
  from_env.master_key_file = path;
  from_env.passphrase.env_var = "KEYLINE_TEST_PASSPHRASE";
  BOOST_TEST(CreateSoftwareCustody(from_env).ok());
}

BOOST_AUTO_TEST_CASE(WrongPassphraseIsAClearError) {
  TempDir dir;
  WriteFile(dir.path() / "pass", "right");
  WriteFile(dir.path() / "wrong", "wrong");
  auto path = dir.path() / "master.key";
  KL_REQUIRE_OK(CreateMasterKeyFile(path, CheapPassphrase(dir.path() / "pass")));
  SoftwareCustodyOptions options;
  options.master_key_file = path;
  options.passphrase.file = dir.path() / "wrong";
  auto result = CreateSoftwareCustody(options);
  BOOST_TEST(result.status().code() == StatusCode::kUnauthenticated);
  BOOST_TEST(result.status().message() == "wrong passphrase for master key file " + path.string());
  options.passphrase = {};
  BOOST_TEST(CreateSoftwareCustody(options).status().code() == StatusCode::kFailedPrecondition);
}

BOOST_AUTO_TEST_CASE(TamperedKeyFileIsAClearError) {
  TempDir dir;
  WriteFile(dir.path() / "pass", "right");
  for (bool protect : {false, true}) {
    auto path = dir.path() / (protect ? "protected.key" : "clear.key");
    KL_REQUIRE_OK(CreateMasterKeyFile(path, protect ? CheapPassphrase(dir.path() / "pass")
                                                    : MasterKeyFileOptions{}));
    std::string bytes;
    {
      std::ifstream in(path, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    for (size_t offset : {size_t{7}, bytes.size() / 2, bytes.size() - 1}) {
      std::string tampered = bytes;
      tampered[offset] = static_cast<char>(tampered[offset] ^ 0x01);
      auto bad = dir.path() / "tampered.key";
      std::filesystem::remove(bad);
      WriteFile(bad, tampered);
      SoftwareCustodyOptions options;
      options.master_key_file = bad;
      if (protect) options.passphrase.file = dir.path() / "pass";
      auto result = CreateSoftwareCustody(options);
      BOOST_TEST(result.status().code() == StatusCode::kDataLoss);
      BOOST_TEST(result.status().message().find("modified") != std::string::npos,
                 result.status().message());
    }
  }
}

BOOST_AUTO_TEST_CASE(KeyFileReadableByOthersIsRefused) {
  TempDir dir;
  auto path = dir.path() / "master.key";
  KL_REQUIRE_OK(CreateMasterKeyFile(path, {}));
  ::chmod(path.c_str(), 0644);
  SoftwareCustodyOptions options;
  options.master_key_file = path;
  auto result = CreateSoftwareCustody(options);
  BOOST_TEST(result.status().code() == StatusCode::kPermissionDenied);
  BOOST_TEST(result.status().message().find("0644") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(ExistingKeyFileIsNeverOverwritten) {
  TempDir dir;
  auto path = dir.path() / "master.key";
  KL_REQUIRE_OK(CreateMasterKeyFile(path, {}));
  BOOST_TEST(CreateMasterKeyFile(path, {}).code() == StatusCode::kAlreadyExists);
}

BOOST_AUTO_TEST_SUITE_END()

std::vector<uint8_t> Bytes(std::string_view text) { return {text.begin(), text.end()}; }

BOOST_AUTO_TEST_SUITE(EcdsaP256Tests)

BOOST_AUTO_TEST_CASE(EcdsaSignatureVerifiesOnlyForItsMessageAndKey) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kEcdsaP256));
  KeyHandle other = KL_VALUE(custody->GenerateKey(KeyKind::kEcdsaP256));
  BOOST_TEST(KeyKindName(key.kind) == "ecdsa-p256");
  std::vector<uint8_t> spki = KL_VALUE(custody->GetPublicKeyInfo(key));
  std::vector<uint8_t> message = Bytes("ECU 0011223344556677 certificate request");
  std::vector<uint8_t> signature = KL_VALUE(custody->SignEcdsaSha256(key, message));
  KL_REQUIRE_OK(VerifyEcdsaSha256(spki, message, signature));

  std::vector<uint8_t> tampered = message;
  tampered[0] ^= 0x01;
  BOOST_TEST(VerifyEcdsaSha256(spki, tampered, signature).code() == StatusCode::kUnauthenticated);
  std::vector<uint8_t> bad_signature = signature;
  bad_signature.back() ^= 0x01;
  BOOST_TEST(VerifyEcdsaSha256(spki, message, bad_signature).code() ==
             StatusCode::kUnauthenticated);
  std::vector<uint8_t> other_spki = KL_VALUE(custody->GetPublicKeyInfo(other));
  BOOST_TEST(VerifyEcdsaSha256(other_spki, message, signature).code() ==
             StatusCode::kUnauthenticated);
  BOOST_TEST(VerifyEcdsaSha256(Bytes("not a key"), message, signature).code() ==
             StatusCode::kInvalidArgument);
}

// OpenSSL's own encoding of a key (i2d_PUBKEY through its key encoders).
std::vector<uint8_t> OpenSslSpki(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key, &der);
  BOOST_REQUIRE(len > 0);
  std::vector<uint8_t> out(der, der + len);
  OPENSSL_free(der);
  return out;
}

// Public keys are encoded and read through the ASN.1 structure, not OpenSSL 3's key encoders
// and decoders: the bytes are the same as OpenSSL's, and what is not a P-256 key is refused.
BOOST_AUTO_TEST_CASE(PublicKeyInfoIsOpenSslsEncodingAndOtherKeysAreRefused) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kEcdsaP256));
  std::vector<uint8_t> spki = KL_VALUE(custody->GetPublicKeyInfo(key));
  const unsigned char* p = spki.data();
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> decoded(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())),
                                                              &EVP_PKEY_free);
  BOOST_REQUIRE(decoded);
  BOOST_TEST((OpenSslSpki(decoded.get()) == spki));

  std::vector<uint8_t> message = Bytes("confirmation");
  std::vector<uint8_t> signature = KL_VALUE(custody->SignEcdsaSha256(key, message));
  auto refused = [&](const std::vector<uint8_t>& other, const char* what) {
    BOOST_TEST(VerifyEcdsaSha256(other, message, signature).code() == StatusCode::kInvalidArgument, what);
  };
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> ed25519(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"),
                                                              &EVP_PKEY_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"),
                                                           &EVP_PKEY_free);
  BOOST_REQUIRE(ed25519);
  BOOST_REQUIRE(p384);
  refused(OpenSslSpki(ed25519.get()), "an Ed25519 key");
  refused(OpenSslSpki(p384.get()), "a P-384 key");
  std::vector<uint8_t> trailing = spki;
  trailing.push_back(0);
  refused(trailing, "a trailing byte");
  std::vector<uint8_t> off_curve = spki;
  off_curve.back() ^= 0x01;
  refused(off_curve, "a point off the curve");
  std::vector<uint8_t> truncated(spki.begin(), spki.end() - 1);
  refused(truncated, "a truncated key");
  KL_REQUIRE_OK(VerifyEcdsaSha256(spki, message, signature));
}

BOOST_AUTO_TEST_CASE(StoredEcdsaKeyKeepsItsPublicKeyAndSigns) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kEcdsaP256));
  std::vector<uint8_t> spki = KL_VALUE(custody->GetPublicKeyInfo(key));
  WrappedKey blob = KL_VALUE(custody->WrapForStorage(key, "plant/p1/issuing-ca"));
  std::vector<KeyHandle> keys{key};
  std::vector<std::string> contexts{"plant/p1/issuing-ca/many"};
  std::vector<WrappedKey> many = KL_VALUE(custody->WrapManyForStorage(keys, contexts));
  KL_REQUIRE_OK(custody->DestroyKey(key));

  for (KeyHandle back : {KL_VALUE(custody->UnwrapFromStorage(blob, "plant/p1/issuing-ca")),
                         KL_VALUE(custody->UnwrapFromStorage(many[0], contexts[0]))}) {
    BOOST_TEST((back.kind == KeyKind::kEcdsaP256));
    BOOST_TEST((KL_VALUE(custody->GetPublicKeyInfo(back)) == spki));
    std::vector<uint8_t> message = Bytes("after storage");
    KL_REQUIRE_OK(VerifyEcdsaSha256(spki, message, KL_VALUE(custody->SignEcdsaSha256(back, message))));
  }
  BOOST_TEST(custody->UnwrapFromStorage(blob, "plant/p2/issuing-ca").status().code() ==
             StatusCode::kDataLoss);
}

BOOST_AUTO_TEST_CASE(NamedEcdsaKeyIsTheSameAfterReopening) {
  TempDir dir;
  auto path = dir.path() / "master.key";
  KL_REQUIRE_OK(CreateMasterKeyFile(path, {}));
  SoftwareCustodyOptions options;
  options.master_key_file = path;
  std::vector<uint8_t> first;
  {
    auto custody = KL_VALUE(CreateSoftwareCustody(options));
    first = KL_VALUE(custody->GetPublicKeyInfo(
        KL_VALUE(custody->GetOrCreateNamedKey("plant-ca", KeyKind::kEcdsaP256))));
  }
  auto custody = KL_VALUE(CreateSoftwareCustody(options));
  KeyHandle again = KL_VALUE(custody->GetOrCreateNamedKey("plant-ca", KeyKind::kEcdsaP256));
  BOOST_TEST((KL_VALUE(custody->GetPublicKeyInfo(again)) == first));
}

BOOST_AUTO_TEST_CASE(EcdsaKeyIsRefusedWhereAnotherKindIsNeeded) {
  TempDir dir;
  auto custody = OpenWithNewMasterKey(dir);
  KeyHandle p256 = KL_VALUE(custody->GenerateKey(KeyKind::kEcdsaP256));
  KeyHandle ed = KL_VALUE(custody->GenerateKey(KeyKind::kEd25519));
  KeyHandle aes = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  std::vector<uint8_t> message = Bytes("m");

  Status no_raw_public = custody->GetPublicKey(p256).status();
  BOOST_TEST(no_raw_public.code() == StatusCode::kInvalidArgument);
  BOOST_TEST(no_raw_public.message().find("GetPublicKeyInfo") != std::string::npos);
  BOOST_TEST(custody->Sign(p256, message).status().code() == StatusCode::kInvalidArgument);
  BOOST_TEST(custody->KeyCheckValue(p256).status().code() == StatusCode::kInvalidArgument);
  std::vector<KeyHandle> p256_only{p256};
  BOOST_TEST(custody->WrapForPeer(p256_only, KL_VALUE(custody->GetPublicKey(ed)), "c").status().code() ==
             StatusCode::kInvalidArgument);
  for (KeyHandle wrong : {ed, aes}) {
    Status sign = custody->SignEcdsaSha256(wrong, message).status();
    BOOST_TEST(sign.code() == StatusCode::kInvalidArgument);
    BOOST_TEST(sign.message().find("ecdsa-p256") != std::string::npos, sign.ToString());
    BOOST_TEST(custody->GetPublicKeyInfo(wrong).status().code() == StatusCode::kInvalidArgument);
  }
  KL_REQUIRE_OK(custody->DestroyKey(p256));
  BOOST_TEST(custody->SignEcdsaSha256(p256, message).status().code() == StatusCode::kNotFound);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::hsm
