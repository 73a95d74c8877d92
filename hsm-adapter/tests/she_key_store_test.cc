// The simulated ECU's key store against the SHE specification's vector and the custody.
#include <boost/test/unit_test.hpp>

#include "keyline/common/hex.h"
#include "keyline/hsm/she_key_store.h"
#include "keyline/hsm/software_custody.h"

namespace keyline::hsm {
namespace {

template <size_t N>
std::array<uint8_t, N> Hex(std::string_view hex) {
  auto bytes = ParseHex(hex, "test vector").value();
  std::array<uint8_t, N> out{};
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

SheUid SpecUid() { return Hex<15>("000000000000000000000000000001"); }

struct SpecLoad {
  std::array<uint8_t, 16> m1 = Hex<16>("00000000000000000000000000000141");
  std::array<uint8_t, 32> m2 = Hex<32>("2b111e2d93f486566bcbba1d7f7a9797c94643b050fc5d4d7de14cff682203c3");
  std::array<uint8_t, 16> m3 = Hex<16>("b9d745e5ace7d41860bc63c2b9f5bb46");
};

SheKeyStore SpecEcu() {
  SheKeyStore ecu(SpecUid());
  BOOST_REQUIRE(ecu.Provision(kSheSlotMasterEcuKey, "000102030405060708090a0b0c0d0e0f", 0, 0).ok());
  return ecu;
}

BOOST_AUTO_TEST_CASE(LoadOfTheSpecificationVectorAnswersItsM4M5) {
  SheKeyStore ecu = SpecEcu();
  SpecLoad load;
  auto outcome = ecu.LoadKey(load.m1, load.m2, load.m3);
  BOOST_REQUIRE(outcome.ok());
  BOOST_TEST(SheLoadErrorName(outcome->error) == "NONE");
  BOOST_TEST(ToHex(outcome->proof.m4) ==
             "00000000000000000000000000000141b472e8d8727d70d57295e74849a27917");
  BOOST_TEST(ToHex(outcome->proof.m5) == "820d8d95dc11b4668878160cb2a4e23e");
  BOOST_TEST(ecu.Slot(kSheSlotKey1).loaded);
  BOOST_TEST(ecu.Slot(kSheSlotKey1).counter == 1u);
}

BOOST_AUTO_TEST_CASE(RefusalsChangeNothing) {
  SpecLoad load;
  {
    SheKeyStore ecu = SpecEcu();
    auto tampered = load;
    tampered.m3[0] ^= 1;
    BOOST_TEST(SheLoadErrorName(ecu.LoadKey(tampered.m1, tampered.m2, tampered.m3)->error) == SheLoadErrorName(SheLoadError::kKeyUpdateError));
    BOOST_TEST(!ecu.Slot(kSheSlotKey1).loaded);
  }
  {
    SheKeyStore ecu = SpecEcu();
    BOOST_TEST(SheLoadErrorName(ecu.LoadKey(load.m1, load.m2, load.m3)->error) == SheLoadErrorName(SheLoadError::kNone));
    // The same load again: the counter is not larger (a retry after a lost answer).
    BOOST_TEST(SheLoadErrorName(ecu.LoadKey(load.m1, load.m2, load.m3)->error) == SheLoadErrorName(SheLoadError::kCounterNotLarger));
  }
  {
    SheKeyStore other(Hex<15>("000000000000000000000000000002"));
    BOOST_REQUIRE(other.Provision(1, "000102030405060708090a0b0c0d0e0f", 0, 0).ok());
    BOOST_TEST(SheLoadErrorName(other.LoadKey(load.m1, load.m2, load.m3)->error) == SheLoadErrorName(SheLoadError::kKeyUpdateError));
    BOOST_TEST(!other.Slot(kSheSlotKey1).loaded);
  }
  {
    SheKeyStore blank(SpecUid());
    BOOST_TEST(SheLoadErrorName(blank.LoadKey(load.m1, load.m2, load.m3)->error) == SheLoadErrorName(SheLoadError::kKeyEmpty));
  }
  {
    SheKeyStore ecu = SpecEcu();
    BOOST_REQUIRE(ecu.Provision(kSheSlotKey1, "ffeeddccbbaa99887766554433221100", 0,
                                kSheFlagWriteProtection).ok());
    BOOST_TEST(SheLoadErrorName(ecu.LoadKey(load.m1, load.m2, load.m3)->error) == SheLoadErrorName(SheLoadError::kWriteProtected));
    BOOST_TEST(ecu.Slot(kSheSlotKey1).counter == 0u);
  }
}

BOOST_AUTO_TEST_CASE(CustodyLoadsChainThroughANewMasterKeyAndProofsCheck) {
  auto custody = CreateSoftwareCustody({}).value();
  SheUid uid = Hex<15>("0a0b0c0d0e0f101112131415161718");
  KeyHandle transport = custody->ImportKeyFromHex(KeyKind::kAes128, "000102030405060708090a0b0c0d0e0f", "t").value();
  KeyHandle master = custody->GenerateKey(KeyKind::kAes128).value();
  KeyHandle key1 = custody->GenerateKey(KeyKind::kAes128).value();
  SheKeyStore ecu(uid);
  BOOST_REQUIRE(ecu.Provision(1, "000102030405060708090a0b0c0d0e0f", 0, 0).ok());

  struct Step { KeyHandle auth; KeyHandle key; uint8_t slot; };
  for (const Step& step : {Step{transport, master, 1}, Step{master, key1, 4}}) {
    SheLoadRequest request;
    request.auth_key = step.auth;
    request.new_key = step.key;
    request.fields = {uid, step.slot, 1, 5, false};
    request.flags = 0;
    auto messages = custody->ComputeSheLoad(request).value();
    auto outcome = ecu.LoadKey(messages.m1, messages.m2, messages.m3);
    BOOST_REQUIRE(outcome.ok());
    BOOST_REQUIRE(SheLoadErrorName(outcome->error) == "NONE");
    auto check = custody->CheckSheProof(step.key, outcome->proof).value();
    BOOST_TEST(check.Proves(uid, step.slot, 5));
  }
}

}  // namespace
}  // namespace keyline::hsm
