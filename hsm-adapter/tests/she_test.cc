#include <boost/test/unit_test.hpp>

#include <memory>
#include <set>
#include <string>

#include "custody_checks.h"
#include "keyline/hsm/she.h"
#include "keyline/hsm/software_custody.h"

namespace keyline::hsm {
namespace {

using testing::CheckKnownAnswer;
using testing::KatFields;

std::unique_ptr<KeyCustody> NewCustody() { return KL_VALUE(CreateSoftwareCustody({})); }

BOOST_AUTO_TEST_SUITE(SheTests)

BOOST_AUTO_TEST_CASE(SoftwareBackendReproducesKnownAnswerVector) {
  auto custody = NewCustody();
  CheckKnownAnswer(*custody);
}

BOOST_AUTO_TEST_CASE(CachedAuthKeyGivesSameMessagesOnReuse) {
  auto custody = NewCustody();
  KeyHandle auth = KL_VALUE(custody->ImportKeyFromHex(KeyKind::kAes128, testing::kKatAuthKey, "a"));
  KeyHandle fresh = KL_VALUE(custody->ImportKeyFromHex(KeyKind::kAes128, testing::kKatNewKey, "n"));
  for (int i = 0; i < 3; ++i) {
    SheLoadMessages m = KL_VALUE(custody->ComputeSheLoad({auth, fresh, KatFields(), 0}));
    BOOST_TEST(ToHex(m.m2) == testing::kKatM2);
    BOOST_TEST(ToHex(m.m3) == testing::kKatM3);
  }
}

BOOST_AUTO_TEST_CASE(CounterBeyond28BitsIsRefused) {
  auto custody = NewCustody();
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  SheProofFields fields = KatFields();
  fields.counter = kSheMaxCounter;
  BOOST_TEST(custody->ComputeSheLoad({key, key, fields, 0}).ok());
  fields.counter = kSheMaxCounter + 1;
  auto result = custody->ComputeSheLoad({key, key, fields, 0});
  BOOST_TEST(result.status().code() == StatusCode::kOutOfRange);
  BOOST_TEST(result.status().message().find("28 bits") != std::string::npos);
  BOOST_TEST(custody->ComputeSheProof(key, fields).status().code() == StatusCode::kOutOfRange);
}

BOOST_AUTO_TEST_CASE(SlotsBeyond4BitsAreRefused) {
  auto custody = NewCustody();
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  SheProofFields fields = KatFields();
  fields.slot = 16;
  BOOST_TEST(custody->ComputeSheLoad({key, key, fields, 0}).status().code() == StatusCode::kOutOfRange);
  fields = KatFields();
  fields.auth_slot = 16;
  BOOST_TEST(custody->ComputeSheLoad({key, key, fields, 0}).status().code() == StatusCode::kOutOfRange);
}

BOOST_AUTO_TEST_CASE(FlagsBeyond5BitsAreRefused) {
  auto custody = NewCustody();
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  BOOST_TEST(custody->ComputeSheLoad({key, key, KatFields(), 31}).ok());
  auto result = custody->ComputeSheLoad({key, key, KatFields(), 32});
  BOOST_TEST(result.status().code() == StatusCode::kOutOfRange);
}

BOOST_AUTO_TEST_CASE(FlagBitsLandInM2SoTheyChangeIt) {
  auto custody = NewCustody();
  KeyHandle auth = KL_VALUE(custody->ImportKeyFromHex(KeyKind::kAes128, testing::kKatAuthKey, "a"));
  KeyHandle fresh = KL_VALUE(custody->ImportKeyFromHex(KeyKind::kAes128, testing::kKatNewKey, "n"));
  std::set<std::string> seen;
  for (uint8_t flag : {0, 1, 2, 4, 8, 16}) {
    SheLoadMessages m = KL_VALUE(custody->ComputeSheLoad({auth, fresh, KatFields(), flag}));
    seen.insert(ToHex(m.m2));
  }
  BOOST_TEST(seen.size() == 6u);
}

BOOST_AUTO_TEST_CASE(WildcardUidNeedsExplicitPermission) {
  auto custody = NewCustody();
  KeyHandle key = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  SheProofFields fields = KatFields();
  fields.uid = {};
  auto refused = custody->ComputeSheLoad({key, key, fields, kSheFlagWildcard});
  BOOST_TEST(refused.status().code() == StatusCode::kInvalidArgument);
  BOOST_TEST(refused.status().message().find("wildcard") != std::string::npos);
  fields.allow_wildcard_uid = true;
  SheLoadMessages m = KL_VALUE(custody->ComputeSheLoad({key, key, fields, kSheFlagWildcard}));
  BOOST_TEST(ToHex(m.m1) == "00000000000000000000000000000041");
}

BOOST_AUTO_TEST_CASE(TamperedProofIsInvalidNotAnError) {
  auto custody = NewCustody();
  KeyHandle fresh = KL_VALUE(custody->ImportKeyFromHex(KeyKind::kAes128, testing::kKatNewKey, "n"));
  SheProof proof = KL_VALUE(custody->ComputeSheProof(fresh, KatFields()));
  for (size_t bit = 0; bit < 8 * (proof.m4.size() + proof.m5.size()); ++bit) {
    SheProof bad = proof;
    if (bit < 256) {
      bad.m4[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    } else {
      bad.m5[(bit - 256) / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    }
    SheProofCheck check = KL_VALUE(custody->CheckSheProof(fresh, bad));
    BOOST_TEST_REQUIRE(!check.valid, "bit " << bit);
  }
}

BOOST_AUTO_TEST_CASE(ProofCarriesUidSlotAndCounter) {
  auto custody = NewCustody();
  KeyHandle fresh = KL_VALUE(custody->GenerateKey(KeyKind::kAes128));
  SheProofFields fields;
  for (size_t i = 0; i < fields.uid.size(); ++i) fields.uid[i] = static_cast<uint8_t>(0xA0 + i);
  fields.slot = 0xD;
  fields.auth_slot = 0x1;
  fields.counter = 0x0ABCDEF1;
  SheProof proof = KL_VALUE(custody->ComputeSheProof(fresh, fields));
  SheProofCheck check = KL_VALUE(custody->CheckSheProof(fresh, proof));
  BOOST_TEST(check.Proves(fields.uid, 0xD, 0x0ABCDEF1));
  BOOST_TEST(check.auth_slot == 1);
  BOOST_TEST(!check.Proves(fields.uid, 0xD, 0x0ABCDEF2));
}

BOOST_AUTO_TEST_CASE(SlotNamesFollowClassicShe) {
  BOOST_TEST(SheSlotName(1) == "MASTER_ECU_KEY");
  BOOST_TEST(SheSlotName(4) == "KEY_1");
  BOOST_TEST(SheSlotName(13) == "KEY_10");
  BOOST_TEST(SheSlotName(14) == "RAM_KEY");
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::hsm
