// pks_injector.fbs: every PKS <-> injector message round-trips with every field, refusals carry
// a specific error, and every message survives corruption.
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "corruption.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "samples.h"

namespace keyline::schemas::testing {
namespace {

std::vector<uint8_t> ToVector(std::span<const uint8_t> bytes) {
  return {bytes.begin(), bytes.end()};
}

// The payload of a sample envelope of T, decoded through DecodeEnvelope and PayloadAs, as a
// receiver would. `envelope` keeps the bytes alive.
template <WireMessage T>
const T* ReceiveSample(std::vector<uint8_t>& envelope) {
  envelope = SampleEnvelope<T>();
  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(envelope);
  BOOST_REQUIRE_MESSAGE(decoded.ok(), decoded.status().ToString());
  StatusOr<const T*> payload = PayloadAs<T>(*decoded);
  BOOST_REQUIRE_MESSAGE(payload.ok(), payload.status().ToString());
  return *payload;
}

BOOST_AUTO_TEST_SUITE(PksInjector)

BOOST_AUTO_TEST_CASE(KeyPackageRequestRoundTripsWithEveryField) {
  std::vector<uint8_t> envelope;
  const auto* request = ReceiveSample<wire::KeyPackageRequest>(envelope);
  BOOST_TEST(Text(request->request_id()) == "inj-req-991");
  BOOST_TEST(Text(request->station()) == "line1-eol1");
  BOOST_TEST(Text(request->product()) == "acme-bcm-2027");
  BOOST_TEST(CheckFixedBytes(request->ecu_uid(), kEcuUidBytes, "ecu_uid").ok());
  BOOST_TEST(ToVector(Bytes(request->ecu_uid())) == Counting(kEcuUidBytes, 1));
}

BOOST_AUTO_TEST_CASE(KeyPackageRoundTripsWithEveryField) {
  std::vector<uint8_t> envelope;
  const auto* package = ReceiveSample<wire::KeyPackage>(envelope);
  BOOST_TEST(Text(package->request_id()) == "inj-req-991");
  BOOST_TEST(Text(package->package_id()) == "pkg-plant-a-000991");
  BOOST_TEST(Text(package->key_set_id()) == "ks-acme-0001");
  BOOST_TEST(Text(package->product()) == "acme-bcm-2027");
  BOOST_TEST(ToVector(Bytes(package->ecu_uid())) == Counting(kEcuUidBytes, 1));
  BOOST_TEST(package->deadline_us() == 1764086400000000);
  BOOST_TEST(package->error() == nullptr);
  BOOST_REQUIRE(package->slots() != nullptr);
  BOOST_REQUIRE(package->slots()->size() == 2u);
  const wire::PackageSlot* key1 = package->slots()->Get(1);
  BOOST_TEST(key1->slot() == 4);
  BOOST_TEST(key1->auth_slot() == 1);
  BOOST_TEST(key1->counter() == 8u);
  BOOST_TEST(key1->flags() == 0);
  BOOST_TEST(CheckFixedBytes(key1->m1(), kM1Bytes, "m1").ok());
  BOOST_TEST(CheckFixedBytes(key1->m2(), kM2Bytes, "m2").ok());
  BOOST_TEST(CheckFixedBytes(key1->m3(), kM3Bytes, "m3").ok());
  BOOST_TEST(CheckFixedBytes(key1->proof_digest(), kProofDigestBytes, "proof_digest").ok());
  BOOST_TEST(ToVector(Bytes(key1->m1())) == Counting(kM1Bytes, 0x81));
  BOOST_TEST(ToVector(Bytes(key1->m2())) == Counting(kM2Bytes, 0x91));
  BOOST_TEST(ToVector(Bytes(key1->m3())) == Counting(kM3Bytes, 0xd1));
  BOOST_TEST(package->slots()->Get(0)->flags() == 0x10);
  BOOST_REQUIRE(package->certificate() != nullptr);
  BOOST_TEST(Text(package->certificate()->slot()) == "identity");
  BOOST_TEST(ToVector(Bytes(package->certificate()->challenge())) ==
             Counting(kCertificateChallengeBytes, 0xa0));
}

BOOST_AUTO_TEST_CASE(CertificateRequestAndIssuedRoundTripWithEveryField) {
  std::vector<uint8_t> envelope;
  const auto* request = ReceiveSample<wire::CertificateRequest>(envelope);
  BOOST_TEST(Text(request->package_id()) == "pkg-plant-a-000991");
  BOOST_TEST(ToVector(Bytes(request->ecu_uid())) == Counting(kEcuUidBytes, 1));
  BOOST_TEST(Text(request->slot()) == "identity");
  BOOST_TEST(Text(request->csr()).starts_with("-----BEGIN CERTIFICATE REQUEST-----"));

  std::vector<uint8_t> envelope2;
  const auto* issued = ReceiveSample<wire::CertificateIssued>(envelope2);
  BOOST_TEST(Text(issued->package_id()) == "pkg-plant-a-000991");
  BOOST_TEST(ToVector(Bytes(issued->ecu_uid())) == Counting(kEcuUidBytes, 1));
  BOOST_TEST(Text(issued->slot()) == "identity");
  BOOST_TEST(Text(issued->certificate()).ends_with("ecu\n"));
  BOOST_TEST(Text(issued->chain()).ends_with("plant\n"));
  BOOST_TEST(ToVector(Bytes(issued->confirm_challenge())) ==
             Counting(kCertificateChallengeBytes, 0xc0));
  BOOST_TEST(issued->error() == nullptr);
}

BOOST_AUTO_TEST_CASE(KeyPackageRefusalCarriesSpecificErrorForTheTester) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> uid = Counting(kEcuUidBytes, 1);
  auto error = wire::CreatePackageErrorDirect(fbb, wire::PackageErrorCode::OUT_OF_STOCK,
                                              "no key set of acme-bcm-2027 in stock at plant-a");
  fbb.Finish(wire::CreateKeyPackageDirect(fbb, "inj-req-992", nullptr, nullptr, "acme-bcm-2027",
                                          &uid, 0, nullptr, error));
  const std::vector<uint8_t> envelope =
      BuildEnvelope(SampleHeader(wire::MessageType::KeyPackage), FinishedBytes(fbb));

  StatusOr<VerifiedEnvelope> decoded = DecodeEnvelope(envelope);
  BOOST_REQUIRE(decoded.ok());
  StatusOr<const wire::KeyPackage*> package = PayloadAs<wire::KeyPackage>(*decoded);
  BOOST_REQUIRE(package.ok());
  BOOST_REQUIRE((*package)->error() != nullptr);
  BOOST_TEST(((*package)->error()->code() == wire::PackageErrorCode::OUT_OF_STOCK));
  BOOST_TEST(std::string(wire::EnumNamePackageErrorCode((*package)->error()->code())) ==
             "OUT_OF_STOCK");
  BOOST_TEST(Text((*package)->error()->message()) ==
             "no key set of acme-bcm-2027 in stock at plant-a");
  BOOST_TEST((*package)->slots() == nullptr);
  BOOST_TEST(Text((*package)->key_set_id()).empty());
}

BOOST_AUTO_TEST_CASE(ShortEcuUidDecodesSoThePksCanAnswerBadUid) {
  // The decoder checks structure, not protocol lengths: a 14-byte UID reaches the PKS, which
  // answers BAD_UID instead of dropping the request and leaving the tester to time out.
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<uint8_t> uid = Counting(kEcuUidBytes - 1, 1);
  fbb.Finish(
      wire::CreateKeyPackageRequestDirect(fbb, "inj-req-993", "line1-eol1", "acme-bcm-2027", &uid));
  StatusOr<const wire::KeyPackageRequest*> request =
      DecodeMessage<wire::KeyPackageRequest>(FinishedBytes(fbb));
  BOOST_REQUIRE(request.ok());
  Status uid_ok = CheckFixedBytes((*request)->ecu_uid(), kEcuUidBytes, "KeyPackageRequest.ecu_uid");
  BOOST_TEST(uid_ok.code() == StatusCode::kInvalidArgument);
  BOOST_TEST(uid_ok.message() == "KeyPackageRequest.ecu_uid: expected 15 bytes, got 14");
}

BOOST_AUTO_TEST_CASE(MissingEcuUidReadsAsAbsentAndIsReportedByName) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(
      wire::CreateKeyPackageRequestDirect(fbb, "inj-req-994", "line1-eol1", "acme-bcm-2027"));
  StatusOr<const wire::KeyPackageRequest*> request =
      DecodeMessage<wire::KeyPackageRequest>(FinishedBytes(fbb));
  BOOST_REQUIRE(request.ok());
  BOOST_TEST((*request)->ecu_uid() == nullptr);
  BOOST_TEST(Bytes((*request)->ecu_uid()).empty());
  BOOST_TEST(
      CheckFixedBytes((*request)->ecu_uid(), kEcuUidBytes, "KeyPackageRequest.ecu_uid").message() ==
      "KeyPackageRequest.ecu_uid: missing (expected 15 bytes)");
}

BOOST_AUTO_TEST_CASE(InjectionResultRoundTripsWithEveryField) {
  std::vector<uint8_t> envelope;
  const auto* result = ReceiveSample<wire::InjectionResult>(envelope);
  BOOST_TEST(Text(result->package_id()) == "pkg-plant-a-000991");
  BOOST_TEST(ToVector(Bytes(result->ecu_uid())) == Counting(kEcuUidBytes, 1));
  BOOST_TEST(result->attempts() == 1);
  BOOST_TEST(result->finished_at_us() == 1764086401000000);
  BOOST_REQUIRE(result->slots() != nullptr);
  BOOST_REQUIRE(result->slots()->size() == 2u);
  const wire::ResultSlot* master = result->slots()->Get(0);
  BOOST_TEST(master->slot() == 1);
  BOOST_TEST((master->ecu_error() == wire::EcuError::NONE));
  BOOST_TEST(master->attempts() == 1);
  BOOST_TEST(ToVector(Bytes(master->m4())) == Counting(kM4Bytes, 0x40));
  BOOST_TEST(ToVector(Bytes(master->m5())) == Counting(kM5Bytes, 0x70));
  const wire::ResultSlot* key1 = result->slots()->Get(1);
  BOOST_TEST(key1->slot() == 4);
  BOOST_TEST((key1->ecu_error() == wire::EcuError::COUNTER_NOT_LARGER));
  BOOST_TEST(key1->attempts() == 3);
  BOOST_TEST(key1->m4() == nullptr);
  BOOST_TEST(key1->m5() == nullptr);
  BOOST_REQUIRE(result->certificate() != nullptr);
  BOOST_TEST(Text(result->certificate()->slot()) == "identity");
  BOOST_TEST((result->certificate()->ecu_error() == wire::EcuError::NONE));
  BOOST_TEST(ToVector(Bytes(result->certificate()->confirmation())) == Counting(71, 0x30));
}

BOOST_AUTO_TEST_CASE(EcuErrorFromNewerInjectorIsNotMistakenForAKnownValue) {
  // Versioning rule 6: a value appended by a newer release decodes, and reads as unknown.
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::ResultSlot>> slots = {
      wire::CreateResultSlot(fbb, 4, 0, 0, static_cast<wire::EcuError>(200), 1)};
  fbb.Finish(wire::CreateInjectionResultDirect(fbb, "pkg-1", nullptr, &slots));
  StatusOr<const wire::InjectionResult*> result =
      DecodeMessage<wire::InjectionResult>(FinishedBytes(fbb));
  BOOST_REQUIRE(result.ok());
  const wire::EcuError error = (*result)->slots()->Get(0)->ecu_error();
  BOOST_TEST(static_cast<int>(error) == 200);
  BOOST_TEST(std::string(wire::EnumNameEcuError(error)).empty());
  BOOST_TEST((error > wire::EcuError::MAX));
}

KEYLINE_CORRUPTION_TESTS(KeyPackageRequest)
KEYLINE_CORRUPTION_TESTS(KeyPackage)
KEYLINE_CORRUPTION_TESTS(InjectionResult)
KEYLINE_CORRUPTION_TESTS(CertificateRequest)
KEYLINE_CORRUPTION_TESTS(CertificateIssued)

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::schemas::testing
