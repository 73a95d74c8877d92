// A product's certificate slot in C++ form: read and written the same way everywhere, and a
// slot no issuer could use is refused with the field named.
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "keyline/schemas/certificate_slot.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/kms_pks_generated.h"

namespace keyline::schemas {
namespace {

CertificateSlotSpec Spec() {
  CertificateSlotSpec spec;
  spec.name = "identity";
  spec.organization = "Acme";
  spec.organizational_unit = "BCM";
  spec.common_name = "{oem} {product} {uid}";
  spec.validity_days = 5475;
  spec.key_usage = {"digitalSignature", "keyAgreement"};
  spec.extended_key_usage = {"clientAuth"};
  return spec;
}

// Builds `spec` (or, with `key_type`, a slot of that key type) and reads it back.
StatusOr<CertificateSlotSpec> RoundTrip(const CertificateSlotSpec& spec,
                                        wire::CertificateKeyType key_type = wire::CertificateKeyType::ECDSA_P256) {
  flatbuffers::FlatBufferBuilder fbb;
  auto slot = CreateCertificateSlot(fbb, spec);
  if (key_type != wire::CertificateKeyType::ECDSA_P256) {
    fbb.Clear();
    slot = wire::CreateCertificateSlot(fbb, fbb.CreateString(spec.name), key_type, 0, 0, 0, spec.validity_days);
  }
  fbb.Finish(slot);
  auto verified = DecodeVerified<wire::CertificateSlot>(
      std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()), "CertificateSlot");
  if (!verified.ok()) return verified.status();
  return ReadCertificateSlot(**verified, "product p");
}

BOOST_AUTO_TEST_SUITE(CertificateSlotTests)

BOOST_AUTO_TEST_CASE(RoundTripsWithEveryField) {
  auto read = RoundTrip(Spec());
  BOOST_REQUIRE_MESSAGE(read.ok(), read.status().ToString());
  BOOST_TEST((*read == Spec()));
  CertificateSlotSpec bare = Spec();
  bare.key_usage.clear();
  bare.extended_key_usage.clear();
  BOOST_TEST((*RoundTrip(bare) == bare));
}

BOOST_AUTO_TEST_CASE(CommonNameTemplateNamesTheEcu) {
  const std::vector<uint8_t> uid = {0x00, 0x01, 0xab, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff};
  BOOST_TEST(Spec().CommonNameFor(uid, "bcm", "acme") == "acme bcm 0001ab0000000000000000000000ff");
  CertificateSlotSpec repeated = Spec();
  repeated.common_name = "{uid}/{uid}";
  BOOST_TEST(repeated.CommonNameFor(uid, "bcm", "acme") ==
             "0001ab0000000000000000000000ff/0001ab0000000000000000000000ff");
}

BOOST_AUTO_TEST_CASE(UnusableSlotsAreRefusedWithTheFieldNamed) {
  struct Case {
    const char* what;
    CertificateSlotSpec spec;
    const char* says;
  };
  std::vector<Case> cases;
  cases.push_back({"no name", Spec(), "certificate slot name"});
  cases.back().spec.name = "";
  cases.push_back({"a space in the name", Spec(), "expected 1..64"});
  cases.back().spec.name = "my slot";
  cases.push_back({"no validity", Spec(), "validity_days 0"});
  cases.back().spec.validity_days = 0;
  cases.push_back({"too long", Spec(), "validity_days 36501"});
  cases.back().spec.validity_days = 36501;
  cases.push_back({"an empty usage", Spec(), "empty usage"});
  cases.back().spec.extended_key_usage = {""};
  for (const Case& c : cases) {
    auto read = RoundTrip(c.spec);
    BOOST_TEST(read.status().code() == StatusCode::kInvalidArgument, c.what);
    BOOST_TEST(read.status().message().find(c.says) != std::string::npos, c.what << ": " << read.status().message());
    BOOST_TEST(read.status().message().starts_with("product p: "), c.what);
  }
  auto unknown_key_type = RoundTrip(Spec(), static_cast<wire::CertificateKeyType>(7));
  BOOST_TEST(unknown_key_type.status().message().find("is not ECDSA_P256") != std::string::npos);
  auto absent_key_type = RoundTrip(Spec(), wire::CertificateKeyType::UNSPECIFIED);
  BOOST_TEST(absent_key_type.status().code() == StatusCode::kInvalidArgument);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas
