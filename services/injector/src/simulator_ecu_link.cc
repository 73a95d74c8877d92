#include <thread>

#include "keyline/broker/rpc.h"
#include "keyline/injector/ecu_link.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/ecu_link_generated.h"

namespace keyline::injector {

std::string_view EcuErrorName(EcuError error) {
  switch (error) {
    case EcuError::kNone: return "NONE";
    case EcuError::kKeyUpdateError: return "KEY_UPDATE_ERROR";
    case EcuError::kWriteProtected: return "WRITE_PROTECTED";
    case EcuError::kCounterNotLarger: return "COUNTER_NOT_LARGER";
    case EcuError::kTimeout: return "TIMEOUT";
    case EcuError::kNoAnswer: return "NO_ANSWER";
    case EcuError::kKeyInvalid: return "KEY_INVALID";
    case EcuError::kGeneralError: return "GENERAL_ERROR";
    case EcuError::kWrongProof: return "WRONG_PROOF";
    case EcuError::kNotAttempted: return "NOT_ATTEMPTED";
    case EcuError::kCertificateNotIssued: return "CERTIFICATE_NOT_ISSUED";
    case EcuError::kWrongConfirmation: return "WRONG_CONFIRMATION";
  }
  return "UNKNOWN";
}

namespace {

using Clock = std::chrono::steady_clock;

// A failed call as the ECU's outcome: no answer in time is TIMEOUT, an unreachable ECU is
// NO_ANSWER. Anything else is the simulator refusing the request: an error, not an outcome.
StatusOr<EcuError> SilenceOf(const Status& failed) {
  if (failed.code() == StatusCode::kDeadlineExceeded) return EcuError::kTimeout;
  if (failed.code() == StatusCode::kUnavailable || failed.code() == StatusCode::kUnauthenticated) {
    return EcuError::kNoAnswer;
  }
  return Status(failed.code(), "ECU simulator refused the request: " + failed.message());
}

class SimulatorEcuLink final : public EcuLink {
 public:
  explicit SimulatorEcuLink(std::unique_ptr<broker::RpcClient> client) : client_(std::move(client)) {}

  StatusOr<EcuLoadResult> LoadKey(const EcuUid& uid, const std::array<uint8_t, 16>& m1,
                                  const std::array<uint8_t, 32>& m2,
                                  const std::array<uint8_t, 16>& m3,
                                  std::chrono::milliseconds timeout) override {
    flatbuffers::FlatBufferBuilder fbb(256);
    auto request = wire::CreateEcuRequest(
        fbb, fbb.CreateVector(uid.data(), uid.size()), wire::EcuOp::LOAD_KEY,
        fbb.CreateVector(m1.data(), m1.size()), fbb.CreateVector(m2.data(), m2.size()),
        fbb.CreateVector(m3.data(), m3.size()));
    fbb.Finish(request);
    Clock::time_point deadline = Clock::now() + timeout;
    EcuLoadResult result;
    auto reply_bytes = client_->Call(
        std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()),
        static_cast<int>(timeout.count()));
    if (!reply_bytes.ok()) {
      ASSIGN_OR_RETURN(result.error, SilenceOf(reply_bytes.status()));
      result.detail = reply_bytes.status().message();
      return result;
    }
    ASSIGN_OR_RETURN(const wire::EcuReply* reply,
                     schemas::DecodeVerified<wire::EcuReply>(*reply_bytes, "EcuReply"));
    RETURN_IF_ERROR(CheckUid(reply, uid));
    switch (reply->status()) {
      case wire::EcuStatus::OK:
        RETURN_IF_ERROR(schemas::CheckFixedBytes(reply->m4(), 32, "EcuReply.m4"));
        RETURN_IF_ERROR(schemas::CheckFixedBytes(reply->m5(), 16, "EcuReply.m5"));
        std::copy_n(reply->m4()->data(), 32, result.m4.begin());
        std::copy_n(reply->m5()->data(), 16, result.m5.begin());
        return result;
      case wire::EcuStatus::KEY_UPDATE_ERROR: result.error = EcuError::kKeyUpdateError; break;
      case wire::EcuStatus::WRITE_PROTECTED: result.error = EcuError::kWriteProtected; break;
      case wire::EcuStatus::COUNTER_NOT_LARGER: result.error = EcuError::kCounterNotLarger; break;
      case wire::EcuStatus::KEY_EMPTY:
        result.error = EcuError::kKeyUpdateError;
        result.detail = "KEY_EMPTY: the authorising slot holds no key";
        break;
      case wire::EcuStatus::KEY_INVALID: result.error = EcuError::kKeyInvalid; break;
      case wire::EcuStatus::GENERAL_ERROR: result.error = EcuError::kGeneralError; break;
      case wire::EcuStatus::SILENT_TIMEOUT:
      case wire::EcuStatus::SILENT_POWER_LOSS:
        // Silence: hold it until the caller's time-out, as a real bus would.
        std::this_thread::sleep_until(deadline);
        result.error = reply->status() == wire::EcuStatus::SILENT_TIMEOUT ? EcuError::kTimeout
                                                                           : EcuError::kNoAnswer;
        result.detail = reply->status() == wire::EcuStatus::SILENT_TIMEOUT
                            ? "no answer in time"
                            : "no answer: the ECU lost power";
        return result;
      default:
        return DataLossError("EcuReply.status: " +
                             std::to_string(static_cast<int>(reply->status())) +
                             " is not a status this build knows");
    }
    return result;
  }

  StatusOr<std::vector<EcuSlotState>> GetInfo(const EcuUid& uid,
                                              std::chrono::milliseconds timeout) override {
    flatbuffers::FlatBufferBuilder fbb(64);
    fbb.Finish(wire::CreateEcuRequest(fbb, fbb.CreateVector(uid.data(), uid.size()),
                                      wire::EcuOp::GET_INFO));
    ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                     client_->Call(std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()),
                                   static_cast<int>(timeout.count())));
    ASSIGN_OR_RETURN(const wire::EcuReply* reply,
                     schemas::DecodeVerified<wire::EcuReply>(bytes, "EcuReply"));
    RETURN_IF_ERROR(CheckUid(reply, uid));
    if (reply->status() != wire::EcuStatus::OK || reply->slots() == nullptr) {
      return DataLossError("EcuReply to GET_INFO: status " +
                           std::to_string(static_cast<int>(reply->status())) + " without slots");
    }
    std::vector<EcuSlotState> slots;
    for (const wire::EcuSlotInfo* info : *reply->slots()) {
      slots.push_back({info->slot(), info->loaded(), info->counter(), info->flags()});
    }
    return slots;
  }

  StatusOr<EcuCertificateAnswer> GenerateKeyPair(const EcuUid& uid, const std::string& slot,
                                                 std::span<const uint8_t> challenge,
                                                 std::chrono::milliseconds timeout) override {
    flatbuffers::FlatBufferBuilder fbb(256);
    fbb.Finish(wire::CreateEcuRequest(fbb, fbb.CreateVector(uid.data(), uid.size()),
                                      wire::EcuOp::GENERATE_KEY_PAIR, 0, 0, 0,
                                      fbb.CreateString(slot), fbb.CreateVector(challenge.data(),
                                                                               challenge.size())));
    return CertificateCall(fbb, uid, timeout, [](const wire::EcuReply& reply,
                                                 EcuCertificateAnswer& answer) -> Status {
      std::string_view csr = schemas::Text(reply.csr());
      if (csr.empty() || csr.size() > schemas::kMaxPemBytes) {
        return DataLossError("EcuReply.csr: missing or longer than " +
                             std::to_string(schemas::kMaxPemBytes) + " bytes");
      }
      answer.csr = std::string(csr);
      return Status::Ok();
    });
  }

  StatusOr<EcuCertificateAnswer> StoreCertificate(const EcuUid& uid, const std::string& slot,
                                                  const std::string& certificate_pem,
                                                  std::span<const uint8_t> challenge,
                                                  std::chrono::milliseconds timeout) override {
    flatbuffers::FlatBufferBuilder fbb(2048);
    fbb.Finish(wire::CreateEcuRequest(
        fbb, fbb.CreateVector(uid.data(), uid.size()), wire::EcuOp::STORE_CERTIFICATE, 0, 0, 0,
        fbb.CreateString(slot), fbb.CreateVector(challenge.data(), challenge.size()),
        fbb.CreateString(certificate_pem)));
    return CertificateCall(fbb, uid, timeout, [](const wire::EcuReply& reply,
                                                 EcuCertificateAnswer& answer) -> Status {
      std::span<const uint8_t> signature = schemas::Bytes(reply.signature());
      if (signature.empty() || signature.size() > 128) {
        return DataLossError("EcuReply.signature: missing or not a P-256 signature");
      }
      answer.signature.assign(signature.begin(), signature.end());
      return Status::Ok();
    });
  }

 private:
  // One certificate-slot request: silence and refusals become outcomes, an OK reply goes to
  // `read_ok` for the field it must carry.
  template <typename ReadOk>
  StatusOr<EcuCertificateAnswer> CertificateCall(flatbuffers::FlatBufferBuilder& fbb,
                                                 const EcuUid& uid,
                                                 std::chrono::milliseconds timeout, ReadOk read_ok) {
    EcuCertificateAnswer answer;
    auto reply_bytes = client_->Call(std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()),
                                     static_cast<int>(timeout.count()));
    if (!reply_bytes.ok()) {
      ASSIGN_OR_RETURN(answer.error, SilenceOf(reply_bytes.status()));
      answer.detail = reply_bytes.status().message();
      return answer;
    }
    ASSIGN_OR_RETURN(const wire::EcuReply* reply,
                     schemas::DecodeVerified<wire::EcuReply>(*reply_bytes, "EcuReply"));
    RETURN_IF_ERROR(CheckUid(reply, uid));
    switch (reply->status()) {
      case wire::EcuStatus::OK:
        RETURN_IF_ERROR(read_ok(*reply, answer));
        return answer;
      case wire::EcuStatus::CERTIFICATE_MISMATCH:
        answer.error = EcuError::kKeyInvalid;
        answer.detail = "the ECU says the certificate does not hold its key for this slot";
        return answer;
      case wire::EcuStatus::GENERAL_ERROR:
        answer.error = EcuError::kGeneralError;
        return answer;
      default:
        return DataLossError("EcuReply.status: " + std::to_string(static_cast<int>(reply->status())) +
                             " is not an answer to a certificate request");
    }
  }

  static Status CheckUid(const wire::EcuReply* reply, const EcuUid& uid) {
    RETURN_IF_ERROR(schemas::CheckFixedBytes(reply->ecu_uid(), 15, "EcuReply.ecu_uid"));
    if (!std::equal(uid.begin(), uid.end(), reply->ecu_uid()->data())) {
      return DataLossError("EcuReply.ecu_uid: the answer is from another ECU");
    }
    return Status::Ok();
  }

  std::unique_ptr<broker::RpcClient> client_;
};

}  // namespace

StatusOr<std::unique_ptr<EcuLink>> ConnectSimulatorEcuLink(SimulatorEcuLinkOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<broker::RpcClient> client,
                   broker::RpcClient::Connect({options.endpoint, options.server_key, options.keys}));
  return std::unique_ptr<EcuLink>(new SimulatorEcuLink(std::move(client)));
}

}  // namespace keyline::injector
