// The injector's end-of-line endpoint and journal (services/injector):
//   selector 0: an EolRequest from the EOL tester, decoded and checked as HandleEolCall does;
//   selector 1: an EolReply, injector::DecodeEolReply; a decoded reply is encoded again with
//               injector::EncodeEolReply and must decode to the same outcome;
//   selector 2: a StoredProvisioning journal entry, with the KeyPackage and EolReply it holds
//               decoded as the provisioner and Journal::Count decode them.
// The first input byte (mod 3) is the selector; the rest is the buffer.
#include <algorithm>
#include <string>

#include "fuzz_support.h"
#include "keyline/injector/provision_outcome.h"
#include "keyline/wire/injector_store_generated.h"
#include "samples.h"

namespace keyline::fuzz {
namespace {

void CheckSameOutcome(const injector::ProvisionOutcome& a, const injector::ProvisionOutcome& b) {
  FUZZ_CHECK(a.outcome == b.outcome);
  FUZZ_CHECK(a.message == b.message);
  FUZZ_CHECK(a.product == b.product);
  FUZZ_CHECK(a.ecu_uid == b.ecu_uid);
  FUZZ_CHECK(a.station == b.station);
  FUZZ_CHECK(a.plant == b.plant);
  FUZZ_CHECK(a.key_set_id == b.key_set_id);
  FUZZ_CHECK(a.package_id == b.package_id);
  FUZZ_CHECK(a.slots.size() == b.slots.size());
  for (size_t i = 0; i < a.slots.size(); ++i) {
    FUZZ_CHECK(a.slots[i].slot == b.slots[i].slot);
    FUZZ_CHECK(a.slots[i].error == b.slots[i].error);
    FUZZ_CHECK(a.slots[i].attempts == b.slots[i].attempts);
  }
  FUZZ_CHECK(a.report == b.report);
  FUZZ_CHECK(a.repeated == b.repeated);
}

void EolReply(std::span<const uint8_t> bytes) {
  auto outcome = injector::DecodeEolReply(bytes);
  if (!outcome.ok()) {
    FUZZ_CHECK(!outcome.status().message().empty());
    return;
  }
  FUZZ_CHECK(!outcome->outcome.empty());
  const std::vector<uint8_t> encoded = injector::EncodeEolReply(*outcome);
  auto again = injector::DecodeEolReply(encoded);
  FUZZ_CHECK(again.ok());
  CheckSameOutcome(*outcome, *again);
  FUZZ_CHECK(injector::EncodeEolReply(*again) == encoded);
}

void EolRequest(std::span<const uint8_t> bytes) {
  schemas::DecodeError why{};
  auto request = schemas::DecodeVerified<wire::EolRequest>(bytes, "EolRequest", {}, &why);
  if (!request.ok()) {
    CheckRefusal(request.status(), why);
    return;
  }
  (void)ReadEveryField<wire::EolRequest>(bytes);
  if ((*request)->op() != wire::EolOp::PROVISION) return;
  if (!schemas::CheckFixedBytes((*request)->ecu_uid(), schemas::kEcuUidBytes, "ecu_uid").ok()) {
    return;
  }
  injector::EcuUid uid{};
  std::copy_n((*request)->ecu_uid()->data(), uid.size(), uid.begin());
  (void)std::string(schemas::Text((*request)->product()));
}

void StoredProvisioning(std::span<const uint8_t> bytes) {
  schemas::DecodeError why{};
  auto stored =
      schemas::DecodeVerified<wire::StoredProvisioning>(bytes, "journal/fuzz", {}, &why);
  if (!stored.ok()) {
    CheckRefusal(stored.status(), why);
    return;
  }
  (void)ReadEveryField<wire::StoredProvisioning>(bytes);
  // The journal copies both blobs out (journal.cc) before they are decoded.
  const std::vector<uint8_t> package = Copy(schemas::Bytes((*stored)->package()));
  const std::vector<uint8_t> reply = Copy(schemas::Bytes((*stored)->reply()));
  if (!package.empty()) {
    auto decoded = schemas::DecodeMessage<wire::KeyPackage>(package);
    if (decoded.ok()) (void)schemas::testing::ReadAll(**decoded);
  }
  if (!reply.empty()) EolReply(reply);
}

}  // namespace
}  // namespace keyline::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t selector = 0;
  std::vector<uint8_t> bytes;
  if (!keyline::fuzz::Split(data, size, selector, bytes)) return 0;
  switch (selector % 3) {
    case 0: keyline::fuzz::EolRequest(bytes); break;
    case 1: keyline::fuzz::EolReply(bytes); break;
    default: keyline::fuzz::StoredProvisioning(bytes); break;
  }
  return 0;
}
