// Checks every backend must pass, shared by hsm_test (software) and hsm_pkcs11_test.
#pragma once

#include <boost/test/unit_test.hpp>

#include <string>

#include "keyline/common/hex.h"
#include "keyline/hsm/key_custody.h"

namespace keyline::hsm::testing {

// The known-answer vector of SHE.md.
inline constexpr const char* kKatAuthKey = "000102030405060708090a0b0c0d0e0f";
inline constexpr const char* kKatNewKey = "0f0e0d0c0b0a09080706050403020100";
inline constexpr const char* kKatM1 = "00000000000000000000000000000141";
inline constexpr const char* kKatM2 =
    "2b111e2d93f486566bcbba1d7f7a9797c94643b050fc5d4d7de14cff682203c3";
inline constexpr const char* kKatM3 = "b9d745e5ace7d41860bc63c2b9f5bb46";
inline constexpr const char* kKatM4 =
    "00000000000000000000000000000141b472e8d8727d70d57295e74849a27917";
inline constexpr const char* kKatM5 = "820d8d95dc11b4668878160cb2a4e23e";

template <typename T>
T Unwrap(StatusOr<T> value, const char* what) {
  BOOST_REQUIRE_MESSAGE(value.ok(), std::string(what) + ": " + value.status().ToString());
  return std::move(value).value();
}
inline void RequireOk(const Status& status, const char* what) {
  BOOST_REQUIRE_MESSAGE(status.ok(), std::string(what) + ": " + status.ToString());
}
#define KL_REQUIRE_OK(expr) ::keyline::hsm::testing::RequireOk((expr), #expr)
#define KL_VALUE(expr) ::keyline::hsm::testing::Unwrap((expr), #expr)

inline SheProofFields KatFields() {
  SheProofFields fields;
  fields.uid[14] = 0x01;
  fields.slot = 4;
  fields.auth_slot = 1;
  fields.counter = 1;
  return fields;
}

inline void CheckKnownAnswer(KeyCustody& custody) {
  KeyHandle auth = KL_VALUE(custody.ImportKeyFromHex(KeyKind::kAes128, kKatAuthKey, "auth"));
  KeyHandle fresh = KL_VALUE(custody.ImportKeyFromHex(KeyKind::kAes128, kKatNewKey, "new"));
  SheLoadRequest request{auth, fresh, KatFields(), 0};
  SheLoadMessages m = KL_VALUE(custody.ComputeSheLoad(request));
  BOOST_TEST(ToHex(m.m1) == kKatM1);
  BOOST_TEST(ToHex(m.m2) == kKatM2);
  BOOST_TEST(ToHex(m.m3) == kKatM3);
  SheProof proof = KL_VALUE(custody.ComputeSheProof(fresh, KatFields()));
  BOOST_TEST(ToHex(proof.m4) == kKatM4);
  BOOST_TEST(ToHex(proof.m5) == kKatM5);
  SheProofCheck check = KL_VALUE(custody.CheckSheProof(fresh, proof));
  BOOST_TEST(check.valid);
  BOOST_TEST(check.Proves(KatFields().uid, 4, 1));
  BOOST_TEST(check.auth_slot == 1);
  // The same proof does not prove the auth key.
  SheProofCheck wrong = KL_VALUE(custody.CheckSheProof(auth, proof));
  BOOST_TEST(!wrong.valid);
  KL_REQUIRE_OK(custody.DestroyKey(auth));
  KL_REQUIRE_OK(custody.DestroyKey(fresh));
}

}  // namespace keyline::hsm::testing
