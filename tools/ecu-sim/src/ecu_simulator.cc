#include "keyline/ecu_sim/ecu_simulator.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>

#include <spdlog/spdlog.h>

#include "keyline/common/hex.h"
#include "keyline/hsm/she_key_store.h"
#include "keyline/hsm/she_store_seal.h"
#include "keyline/schemas/certificate_slot.h"
#include "keyline/schemas/decode.h"
#include "keyline/schemas/fields.h"
#include "keyline/wire/ecu_link_generated.h"
#include "durable_file.h"
#include "ecu_identities.h"

namespace keyline::ecu_sim {
namespace {

// state file = magic | record*        record = length (4, big-endian) | sealed store
constexpr char kStateMagic[8] = {'K', 'L', 'E', 'C', 'U', 'S', '0', '1'};

struct Replay {
  std::map<EcuUid, hsm::SheKeyStore> stores;
  size_t records = 0;
  bool torn_tail = false;
};

StatusOr<Replay> ReplayState(const std::filesystem::path& path, const hsm::SheStoreSealer& sealer) {
  Replay replay;
  std::ifstream in(path, std::ios::binary);
  if (!in) return replay;  // absent: no ECU yet
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) return replay;
  if (bytes.size() < sizeof(kStateMagic) ||
      std::memcmp(bytes.data(), kStateMagic, sizeof(kStateMagic)) != 0) {
    return DataLossError(path.string() + ": not an ECU simulator state file (bad header)");
  }
  size_t pos = sizeof(kStateMagic);
  const size_t sealed_size = hsm::SheStoreSealer::SealedSize();
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 4 + sealed_size) {
      replay.torn_tail = true;  // an append cut short by a crash: never answered, so drop it
      break;
    }
    uint32_t length = (uint32_t{bytes[pos]} << 24) | (uint32_t{bytes[pos + 1]} << 16) |
                      (uint32_t{bytes[pos + 2]} << 8) | uint32_t{bytes[pos + 3]};
    if (length != sealed_size) {
      return DataLossError(path.string() + ": record " + std::to_string(replay.records + 1) +
                           " at offset " + std::to_string(pos) + " has length " +
                           std::to_string(length) + ", expected " + std::to_string(sealed_size));
    }
    auto store = sealer.Open(std::span<const uint8_t>(bytes.data() + pos + 4, sealed_size));
    if (!store.ok()) {
      return DataLossError(path.string() + ": record " + std::to_string(replay.records + 1) +
                           " at offset " + std::to_string(pos) + ": " + store.status().message());
    }
    EcuUid uid = store->uid();
    replay.stores.insert_or_assign(uid, std::move(store).value());
    ++replay.records;
    pos += 4 + sealed_size;
  }
  return replay;
}

std::vector<uint8_t> Record(const std::vector<uint8_t>& sealed) {
  std::vector<uint8_t> out(4 + sealed.size());
  uint32_t n = static_cast<uint32_t>(sealed.size());
  out[0] = static_cast<uint8_t>(n >> 24);
  out[1] = static_cast<uint8_t>(n >> 16);
  out[2] = static_cast<uint8_t>(n >> 8);
  out[3] = static_cast<uint8_t>(n);
  std::copy(sealed.begin(), sealed.end(), out.begin() + 4);
  return out;
}

EcuRow RowOf(const hsm::SheKeyStore& store) {
  EcuRow row;
  row.uid = store.uid();
  for (uint8_t slot = 0; slot <= hsm::kSheMaxSlot; ++slot) {
    hsm::SheSlotInfo info = store.Slot(slot);
    row.slots.push_back({slot, info.loaded, info.counter, info.flags});
  }
  return row;
}

wire::EcuStatus WireStatus(hsm::SheLoadError error) {
  switch (error) {
    case hsm::SheLoadError::kNone: return wire::EcuStatus::OK;
    case hsm::SheLoadError::kKeyUpdateError: return wire::EcuStatus::KEY_UPDATE_ERROR;
    case hsm::SheLoadError::kWriteProtected: return wire::EcuStatus::WRITE_PROTECTED;
    case hsm::SheLoadError::kCounterNotLarger: return wire::EcuStatus::COUNTER_NOT_LARGER;
    case hsm::SheLoadError::kKeyEmpty: return wire::EcuStatus::KEY_EMPTY;
    case hsm::SheLoadError::kKeyInvalid: return wire::EcuStatus::KEY_INVALID;
  }
  return wire::EcuStatus::GENERAL_ERROR;
}

enum class Fault { kNone, kRefuse, kWrongProof, kTimeout, kPowerLoss };

}  // namespace

Status ValidateFaults(const EcuFaults& f) {
  for (double p : {f.refuse, f.wrong_proof, f.timeout, f.power_loss}) {
    if (!(p >= 0 && p <= 1)) return InvalidArgumentError("a fault probability must be within 0..1");
  }
  if (f.refuse + f.wrong_proof + f.timeout + f.power_loss > 1.0 + 1e-9) {
    return InvalidArgumentError("the fault probabilities add up to more than 1");
  }
  return Status::Ok();
}

std::string UidHex(const EcuUid& uid) { return ToHex(uid); }

std::filesystem::path IdentitiesFile(const std::filesystem::path& state_file) {
  std::filesystem::path file = state_file;
  file += ".identities";
  return file;
}

std::filesystem::path IdentityKeyFile(const EcuSimulatorOptions& options) {
  if (!options.identity_key_file.empty()) return options.identity_key_file;
  return options.state_file.parent_path() / "ecu-identity.key";
}

// Each ECU's certificate slots onto its row; an ECU that has only made a key pair (no SHE load
// stored yet) gets a row of its own, without slots.
void AddCertificates(std::vector<EcuRow>& rows, const EcuIdentities::CertificateMap& certificates) {
  for (const auto& [uid, slots] : certificates) {
    auto row = std::find_if(rows.begin(), rows.end(), [&](const EcuRow& r) { return r.uid == uid; });
    if (row == rows.end()) {
      rows.push_back(EcuRow{uid, {}, {}});
      row = rows.end() - 1;
    }
    row->certificates = slots;
  }
}

struct EcuSimulator::Impl {
  EcuSimulatorOptions options;
  hsm::SheStoreSealer sealer;
  hsm::SheTransportKey transport_key;
  std::unique_ptr<EcuIdentities> identities;
  mutable std::mutex mutex;
  std::map<EcuUid, hsm::SheKeyStore> stores;
  std::optional<AppendOnlyFile> file;  // the state file, once compacted
  std::mt19937_64 rng;
  EcuSimCounters counters;

  Impl(EcuSimulatorOptions o, hsm::SheStoreSealer s, hsm::SheTransportKey t)
      : options(std::move(o)), sealer(std::move(s)), transport_key(std::move(t)), rng(options.seed) {}

  // Rewrites the state file with one record per ECU.
  Status Compact() {
    std::vector<uint8_t> bytes(kStateMagic, kStateMagic + sizeof(kStateMagic));
    for (const auto& [uid, store] : stores) {
      ASSIGN_OR_RETURN(std::vector<uint8_t> sealed, sealer.Seal(store));
      auto record = Record(sealed);
      bytes.insert(bytes.end(), record.begin(), record.end());
    }
    ASSIGN_OR_RETURN(AppendOnlyFile rewritten, AppendOnlyFile::Rewrite(options.state_file, bytes));
    file = std::move(rewritten);
    return Status::Ok();
  }

  // Durable when it returns OK: the answer may then go out.
  Status Persist(const hsm::SheKeyStore& store) {
    ASSIGN_OR_RETURN(std::vector<uint8_t> sealed, sealer.Seal(store));
    return file->Append(Record(sealed));
  }

  StatusOr<hsm::SheKeyStore*> Ecu(const EcuUid& uid) {
    auto it = stores.find(uid);
    if (it != stores.end()) return &it->second;
    hsm::SheKeyStore store(uid);
    RETURN_IF_ERROR(store.ProvisionKey(hsm::kSheSlotMasterEcuKey, transport_key, 0, 0));
    spdlog::info("ecu {}: first contact, factory state", UidHex(uid));
    return &stores.emplace(uid, std::move(store)).first->second;
  }

  Fault Draw() {
    const EcuFaults& f = options.faults;
    if (f.refuse + f.wrong_proof + f.timeout + f.power_loss <= 0) return Fault::kNone;
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    if ((u -= f.refuse) < 0) return Fault::kRefuse;
    if ((u -= f.wrong_proof) < 0) return Fault::kWrongProof;
    if ((u -= f.timeout) < 0) return Fault::kTimeout;
    if ((u -= f.power_loss) < 0) return Fault::kPowerLoss;
    return Fault::kNone;
  }
};

EcuSimulator::EcuSimulator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EcuSimulator::~EcuSimulator() = default;

StatusOr<std::unique_ptr<EcuSimulator>> EcuSimulator::Open(const EcuSimulatorOptions& options) {
  if (options.state_file.empty()) return InvalidArgumentError("the state file is not set");
  RETURN_IF_ERROR(ValidateFaults(options.faults));
  ASSIGN_OR_RETURN(hsm::SheStoreSealer sealer, hsm::SheStoreSealer::LoadKeyFile(options.state_key_file));
  ASSIGN_OR_RETURN(hsm::SheTransportKey transport,
                   hsm::SheTransportKey::LoadFile(options.transport_key_file));
  ASSIGN_OR_RETURN(Replay replay, ReplayState(options.state_file, sealer));
  if (replay.torn_tail) {
    spdlog::warn("{}: dropped a torn last record (the simulator was killed mid-write)",
                 options.state_file.string());
  }
  auto impl = std::make_unique<Impl>(options, std::move(sealer), std::move(transport));
  impl->stores = std::move(replay.stores);
  ASSIGN_OR_RETURN(impl->identities,
                   EcuIdentities::Open(IdentitiesFile(options.state_file), IdentityKeyFile(options)));
  RETURN_IF_ERROR(impl->Compact());
  spdlog::info("{}: {} ECUs restored from {} records", options.state_file.string(),
               impl->stores.size(), replay.records);
  return std::unique_ptr<EcuSimulator>(new EcuSimulator(std::move(impl)));
}

void EcuSimulator::SetFaults(const EcuFaults& faults, uint64_t seed) {
  std::lock_guard lock(impl_->mutex);
  impl_->options.faults = faults;
  impl_->rng.seed(seed);
}

std::vector<EcuRow> EcuSimulator::Ecus() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<EcuRow> rows;
  for (const auto& [uid, store] : impl_->stores) rows.push_back(RowOf(store));
  AddCertificates(rows, impl_->identities->Certificates());
  return rows;
}

EcuSimCounters EcuSimulator::counters() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->counters;
}

StatusOr<std::vector<uint8_t>> EcuSimulator::Handle(const std::string& peer,
                                                    std::span<const uint8_t> bytes) {
  std::lock_guard lock(impl_->mutex);
  Impl& st = *impl_;
  auto refuse = [&](Status status) -> Status {
    ++st.counters.malformed;
    spdlog::warn("refused a request from {}: {}", peer, status.message());
    return status;
  };
  auto decoded = schemas::DecodeVerified<wire::EcuRequest>(bytes, "EcuRequest");
  if (!decoded.ok()) return refuse(decoded.status());
  const wire::EcuRequest* request = *decoded;
  if (Status s = schemas::CheckFixedBytes(request->ecu_uid(), 15, "EcuRequest.ecu_uid"); !s.ok()) {
    return refuse(s);
  }
  EcuUid uid{};
  std::copy_n(request->ecu_uid()->data(), 15, uid.begin());
  if (std::all_of(uid.begin(), uid.end(), [](uint8_t b) { return b == 0; })) {
    return refuse(InvalidArgumentError(
        "EcuRequest.ecu_uid: the all-zero (wildcard) UID addresses no single ECU"));
  }

  flatbuffers::FlatBufferBuilder fbb(256);
  auto uid_vec = fbb.CreateVector(uid.data(), uid.size());
  switch (request->op()) {
    case wire::EcuOp::GET_INFO: {
      ASSIGN_OR_RETURN(hsm::SheKeyStore * store, st.Ecu(uid));
      std::vector<flatbuffers::Offset<wire::EcuSlotInfo>> slots;
      for (const EcuSlotRow& row : RowOf(*store).slots) {
        slots.push_back(wire::CreateEcuSlotInfo(fbb, row.slot, row.loaded, row.counter, row.flags));
      }
      auto slots_vec = fbb.CreateVector(slots);
      fbb.Finish(wire::CreateEcuReply(fbb, uid_vec, wire::EcuStatus::OK, 0, 0, slots_vec));
      break;
    }
    case wire::EcuOp::LOAD_KEY: {
      for (auto [field, size, name] :
           {std::tuple{request->m1(), size_t{16}, "EcuRequest.m1"},
            std::tuple{request->m2(), size_t{32}, "EcuRequest.m2"},
            std::tuple{request->m3(), size_t{16}, "EcuRequest.m3"}}) {
        if (Status s = schemas::CheckFixedBytes(field, size, name); !s.ok()) return refuse(s);
      }
      ASSIGN_OR_RETURN(hsm::SheKeyStore * store, st.Ecu(uid));
      ++st.counters.loads;
      Fault fault = st.Draw();
      uint8_t slot = static_cast<uint8_t>(request->m1()->Get(15) >> 4);
      std::string where = UidHex(uid) + " " + std::string(hsm::SheSlotName(slot));
      wire::EcuStatus status = wire::EcuStatus::OK;
      hsm::SheProof proof;
      bool has_proof = false;
      if (fault == Fault::kRefuse) {
        ++st.counters.faults_refuse;
        status = wire::EcuStatus::GENERAL_ERROR;
        spdlog::info("ecu {}: LOAD_KEY from {}: fault refuse -> GENERAL_ERROR", where, peer);
      } else if (fault == Fault::kTimeout) {
        ++st.counters.faults_timeout;
        status = wire::EcuStatus::SILENT_TIMEOUT;
        spdlog::info("ecu {}: LOAD_KEY from {}: fault timeout, nothing stored, no answer", where,
                     peer);
      } else {
        ASSIGN_OR_RETURN(
            hsm::SheLoadOutcome outcome,
            store->LoadKey(std::span<const uint8_t, 16>(request->m1()->data(), 16),
                           std::span<const uint8_t, 32>(request->m2()->data(), 32),
                           std::span<const uint8_t, 16>(request->m3()->data(), 16)));
        status = WireStatus(outcome.error);
        if (outcome.error != hsm::SheLoadError::kNone) {
          ++st.counters.she_refusals;
          spdlog::info("ecu {}: LOAD_KEY from {}: {}", where, peer,
                       hsm::SheLoadErrorName(outcome.error));
        } else {
          ++st.counters.loaded;
          RETURN_IF_ERROR(st.Persist(*store));
          proof = outcome.proof;
          has_proof = true;
          hsm::SheSlotInfo info = store->Slot(slot);
          if (fault == Fault::kPowerLoss) {
            ++st.counters.faults_power_loss;
            status = wire::EcuStatus::SILENT_POWER_LOSS;
            has_proof = false;
            spdlog::info("ecu {}: LOAD_KEY from {}: stored counter {}, fault power loss, no answer",
                         where, peer, info.counter);
          } else if (fault == Fault::kWrongProof) {
            ++st.counters.faults_wrong_proof;
            proof.m5[0] ^= 0x01;
            spdlog::info("ecu {}: LOAD_KEY from {}: stored counter {}, fault wrong proof", where,
                         peer, info.counter);
          } else {
            spdlog::info("ecu {}: LOAD_KEY from {}: stored counter {}", where, peer, info.counter);
          }
        }
      }
      flatbuffers::Offset<flatbuffers::Vector<uint8_t>> m4 = 0;
      flatbuffers::Offset<flatbuffers::Vector<uint8_t>> m5 = 0;
      if (has_proof) {
        m4 = fbb.CreateVector(proof.m4.data(), proof.m4.size());
        m5 = fbb.CreateVector(proof.m5.data(), proof.m5.size());
      }
      fbb.Finish(wire::CreateEcuReply(fbb, uid_vec, status, m4, m5));
      break;
    }
    case wire::EcuOp::GENERATE_KEY_PAIR:
    case wire::EcuOp::STORE_CERTIFICATE: {
      std::string slot(schemas::Text(request->cert_slot()));
      if (Status s = schemas::CheckCertificateSlotName(slot); !s.ok()) {
        return refuse(InvalidArgumentError("EcuRequest.cert_slot: " + s.message()));
      }
      if (Status s = schemas::CheckFixedBytes(request->challenge(), schemas::kCertificateChallengeBytes,
                                              "EcuRequest.challenge");
          !s.ok()) {
        return refuse(s);
      }
      std::string where = UidHex(uid) + " certificate slot " + slot;
      std::span<const uint8_t> challenge = schemas::Bytes(request->challenge());
      if (request->op() == wire::EcuOp::GENERATE_KEY_PAIR) {
        ASSIGN_OR_RETURN(IdentityAnswer answer, st.identities->GenerateKeyPair(uid, slot, challenge));
        ++st.counters.csrs;
        spdlog::info("ecu {}: GENERATE_KEY_PAIR from {}: CSR", where, peer);
        fbb.Finish(wire::CreateEcuReply(fbb, uid_vec, wire::EcuStatus::OK, 0, 0, 0,
                                        fbb.CreateString(answer.csr)));
        break;
      }
      std::string_view certificate = schemas::Text(request->certificate());
      if (certificate.empty() || certificate.size() > schemas::kMaxPemBytes) {
        return refuse(InvalidArgumentError("EcuRequest.certificate: expected a PEM certificate of 1.." +
                                           std::to_string(schemas::kMaxPemBytes) + " bytes"));
      }
      auto answer = st.identities->StoreCertificate(uid, slot, std::string(certificate), challenge);
      if (!answer.ok() && answer.status().code() == StatusCode::kInvalidArgument) {
        return refuse(InvalidArgumentError("EcuRequest.certificate: " + answer.status().message()));
      }
      RETURN_IF_ERROR(answer.status());
      if (!answer->matches) {
        spdlog::info("ecu {}: STORE_CERTIFICATE from {}: CERTIFICATE_MISMATCH", where, peer);
        fbb.Finish(wire::CreateEcuReply(fbb, uid_vec, wire::EcuStatus::CERTIFICATE_MISMATCH));
        break;
      }
      ++st.counters.certificates;
      spdlog::info("ecu {}: STORE_CERTIFICATE from {}: stored, confirmed", where, peer);
      fbb.Finish(wire::CreateEcuReply(fbb, uid_vec, wire::EcuStatus::OK, 0, 0, 0, 0,
                                      fbb.CreateVector(answer->signature)));
      break;
    }
    default:
      return refuse(InvalidArgumentError("EcuRequest.op: " +
                                         std::to_string(static_cast<int>(request->op())) +
                                         " is not LOAD_KEY, GET_INFO, GENERATE_KEY_PAIR or "
                                         "STORE_CERTIFICATE"));
  }
  return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

StatusOr<std::vector<EcuRow>> ReadEcuState(const std::filesystem::path& state_file,
                                           const std::filesystem::path& state_key_file) {
  ASSIGN_OR_RETURN(hsm::SheStoreSealer sealer, hsm::SheStoreSealer::LoadKeyFile(state_key_file));
  if (!std::filesystem::exists(state_file)) {
    return NotFoundError(state_file.string() + ": no state file (the simulator never ran here?)");
  }
  ASSIGN_OR_RETURN(Replay replay, ReplayState(state_file, sealer));
  std::vector<EcuRow> rows;
  for (const auto& [uid, store] : replay.stores) rows.push_back(RowOf(store));
  ASSIGN_OR_RETURN(auto certificates, EcuIdentities::ReadCertificates(IdentitiesFile(state_file)));
  AddCertificates(rows, certificates);
  return rows;
}

}  // namespace keyline::ecu_sim
