// The injector <-> ECU link (schemas/ecu_link.fbs):
//   selector even: an EcuRequest as the ECU simulator decodes and checks it (ecu_simulator.cc);
//   selector odd:  an EcuReply as the injector's EcuLink decodes and checks it
//                  (simulator_ecu_link.cc): uid, status, M4/M5 for OK, slot infos for GET_INFO.
#include <algorithm>
#include <array>

#include "fuzz_support.h"
#include "keyline/schemas/certificate_slot.h"
#include "keyline/wire/ecu_link_generated.h"

namespace keyline::fuzz {
namespace {

void Request(std::span<const uint8_t> bytes) {
  schemas::DecodeError why{};
  auto decoded = schemas::DecodeVerified<wire::EcuRequest>(bytes, "EcuRequest", {}, &why);
  if (!decoded.ok()) {
    CheckRefusal(decoded.status(), why);
    return;
  }
  (void)ReadEveryField<wire::EcuRequest>(bytes);
  const wire::EcuRequest* request = *decoded;
  if (!schemas::CheckFixedBytes(request->ecu_uid(), 15, "EcuRequest.ecu_uid").ok()) return;
  std::array<uint8_t, 15> uid{};
  std::copy_n(request->ecu_uid()->data(), 15, uid.begin());
  if (request->op() == wire::EcuOp::GENERATE_KEY_PAIR || request->op() == wire::EcuOp::STORE_CERTIFICATE) {
    // What the simulator checks before its custody sees anything.
    (void)schemas::CheckCertificateSlotName(schemas::Text(request->cert_slot()));
    (void)schemas::CheckFixedBytes(request->challenge(), schemas::kCertificateChallengeBytes, "challenge");
    return;
  }
  if (request->op() != wire::EcuOp::LOAD_KEY) return;
  if (!schemas::CheckFixedBytes(request->m1(), 16, "m1").ok() ||
      !schemas::CheckFixedBytes(request->m2(), 32, "m2").ok() ||
      !schemas::CheckFixedBytes(request->m3(), 16, "m3").ok()) {
    return;
  }
  const uint8_t slot = static_cast<uint8_t>(request->m1()->Get(15) >> 4);
  FUZZ_CHECK(slot < 16);
}

void Reply(std::span<const uint8_t> bytes) {
  schemas::DecodeError why{};
  auto decoded = schemas::DecodeVerified<wire::EcuReply>(bytes, "EcuReply", {}, &why);
  if (!decoded.ok()) {
    CheckRefusal(decoded.status(), why);
    return;
  }
  (void)ReadEveryField<wire::EcuReply>(bytes);
  const wire::EcuReply* reply = *decoded;
  (void)schemas::CheckFixedBytes(reply->ecu_uid(), 15, "EcuReply.ecu_uid");
  if (reply->status() == wire::EcuStatus::OK) {
    std::array<uint8_t, 32> m4{};
    std::array<uint8_t, 16> m5{};
    if (schemas::CheckFixedBytes(reply->m4(), 32, "m4").ok() &&
        schemas::CheckFixedBytes(reply->m5(), 16, "m5").ok()) {
      std::copy_n(reply->m4()->data(), 32, m4.begin());
      std::copy_n(reply->m5()->data(), 16, m5.begin());
    }
    if (reply->slots() != nullptr) {
      for (const wire::EcuSlotInfo* info : *reply->slots()) {
        (void)info->slot();
        (void)info->loaded();
        (void)info->counter();
        (void)info->flags();
      }
    }
  }
}

}  // namespace
}  // namespace keyline::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint8_t selector = 0;
  std::vector<uint8_t> bytes;
  if (!keyline::fuzz::Split(data, size, selector, bytes)) return 0;
  if (selector % 2 == 0) {
    keyline::fuzz::Request(bytes);
  } else {
    keyline::fuzz::Reply(bytes);
  }
  return 0;
}
