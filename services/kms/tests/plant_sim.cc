#include "plant_sim.h"

#include <boost/test/unit_test.hpp>

#include "keyline/hsm/software_custody.h"
#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"

namespace keyline::kms::testing {

PlantSim::PlantSim(std::filesystem::path dir, std::string plant) : dir_(std::move(dir)), plant_(std::move(plant)) {
  curve_ = *broker::CurveKeyPair::Generate();
  auto custody = hsm::CreateSoftwareCustody({});
  BOOST_REQUIRE_MESSAGE(custody.ok(), custody.status().ToString());
  custody_ = std::move(*custody);
  transfer_ = *custody_->GenerateKey(hsm::KeyKind::kX25519);
  signing_ = *custody_->GenerateKey(hsm::KeyKind::kEd25519);
  wrap_public_ = *custody_->GetPublicKey(transfer_);
  signing_public_ = *custody_->GetPublicKey(signing_);
  auto database = broker::Database::Open({.path = dir_ / "db"});
  BOOST_REQUIRE_MESSAGE(database.ok(), database.status().ToString());
  database_ = std::move(*database);
  auto store = broker::MessageStore::Open(database_.get(), {.self = plant_});
  BOOST_REQUIRE(store.ok());
  store_ = std::move(*store);
}

PlantSim::~PlantSim() {
  client_.reset();
  store_.reset();
  database_.reset();
}

void PlantSim::Connect(const std::string& endpoint, const broker::CurvePublicKey& kms_key) {
  broker::LinkClient::Options options;
  options.server_endpoint = endpoint;
  options.server_key = kms_key;
  options.server_name = "kms";
  options.keys = curve_;
  options.link.heartbeat_interval_ms = 100;
  options.link.heartbeat_timeout_ms = 1000;
  auto client = broker::LinkClient::Start(
      store_.get(),
      [this](const broker::Delivery& d, broker::WriteContext&) -> Status {
        std::lock_guard lock(mu_);
        if (d.type == wire::MessageType::StockBatch) {
          auto batch = flatbuffers::GetRoot<wire::StockBatch>(d.payload.data());
          ++shipments_;
          if (batch->key_sets()) {
            for (const auto* set : *batch->key_sets()) {
              ShippedKeySet s;
              s.key_set_id = set->key_set_id()->str();
              s.product = batch->product()->str();
              s.shipment_id = batch->batch_id()->str();
              s.wrapped.assign(set->wrapped()->begin(), set->wrapped()->end());
              s.slots.assign(set->slots()->begin(), set->slots()->end());
              shipped_.push_back(s);
            }
          }
        } else if (d.type == wire::MessageType::ConfigUpdate) {
          const auto* config = flatbuffers::GetRoot<wire::ConfigUpdate>(d.payload.data());
          config_versions_.push_back(config->version());
          std::vector<std::string> cas;
          if (config->issuing_cas()) {
            for (const auto* ca : *config->issuing_cas()) cas.push_back(ca->key_name()->str());
          }
          config_issuing_cas_.push_back(cas);
          config_budgets_.emplace_back(0, 0);
          if (config->issuing_cas() && config->issuing_cas()->size() > 0) {
            const auto* first = config->issuing_cas()->Get(0);
            config_budgets_.back() = {first->budget_min(), first->budget_target()};
          }
        } else if (d.type == wire::MessageType::CertificateBudgetGrant) {
          const auto* grant = flatbuffers::GetRoot<wire::CertificateBudgetGrant>(d.payload.data());
          budget_grants_.push_back({grant->request_id()->str(), grant->grant_id()->str(), grant->plant()->str(),
                                    grant->oem()->str(), grant->count()});
        } else if (d.type == wire::MessageType::PlantCaRequest) {
          plant_ca_requests_.emplace_back(d.payload.begin(), d.payload.end());
        } else if (d.type == wire::MessageType::VerificationRequest) {
          verification_requests_.push_back(
              flatbuffers::GetRoot<wire::VerificationRequest>(d.payload.data())->barrier_id()->str());
        }
        return Status::Ok();
      },
      options);
  BOOST_REQUIRE_MESSAGE(client.ok(), client.status().ToString());
  client_ = std::move(*client);
}

void PlantSim::Disconnect() { client_.reset(); }

void PlantSim::Send(const std::string& stream, uint16_t type, const std::vector<uint8_t>& payload) {
  Status s = store_->Commit([&](broker::WriteContext& write) -> Status {
    return write.Send({"kms", stream}, static_cast<wire::MessageType>(type), payload).status();
  });
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
}

void PlantSim::RequestStock(const std::string& request_id, const std::string& product, uint32_t count) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::CreateStockRequest(fbb, fbb.CreateString(request_id), fbb.CreateString(product), count));
  auto bytes = schemas::FinishedBytes(fbb);
  Send("control", static_cast<uint16_t>(wire::MessageType::StockRequest), {bytes.begin(), bytes.end()});
}

std::vector<uint8_t> PlantSim::MakeRecord(uint64_t sequence, const ShippedKeySet& set,
                                          const std::vector<SlotLoad>& layout, const std::array<uint8_t, 15>& uid,
                                          bool injected, hsm::KeyHandle* signer_override,
                                          const std::string& certificate) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<wire::RecordSlot>> slots;
  if (injected) {
    auto keys = custody_->UnwrapFromPeer(transfer_, hsm::WrappedKeySet{set.wrapped},
                                         "keyset/" + set.key_set_id + "/plant/" + plant_);
    BOOST_REQUIRE_MESSAGE(keys.ok(), keys.status().ToString());
    BOOST_REQUIRE_EQUAL(keys->size(), layout.size());
    for (size_t i = 0; i < layout.size(); ++i) {
      hsm::SheProofFields fields;
      fields.uid = uid;
      fields.slot = layout[i].slot;
      fields.auth_slot = layout[i].auth_slot;
      fields.counter = layout[i].counter;
      auto proof = custody_->ComputeSheProof((*keys)[i], fields);
      BOOST_REQUIRE(proof.ok());
      slots.push_back(wire::CreateRecordSlot(fbb, layout[i].slot, layout[i].auth_slot, layout[i].counter,
                                             layout[i].flags, fbb.CreateVector(proof->m4.data(), 32),
                                             fbb.CreateVector(proof->m5.data(), 16)));
      (void)custody_->DestroyKey((*keys)[i]);
    }
  }
  fbb.Finish(wire::CreateInjectionRecordBody(
      fbb, sequence, fbb.CreateString(plant_), fbb.CreateString("station-1"), fbb.CreateString(set.product),
      fbb.CreateString(set.key_set_id), fbb.CreateVector(uid.data(), uid.size()),
      injected ? wire::RecordOutcome::INJECTED : wire::RecordOutcome::BURNED,
      fbb.CreateString(injected ? "" : "slot 4: WRONG_PROOF"), 1764645000000000 + static_cast<int64_t>(sequence),
      fbb.CreateVector(slots),
      certificate.empty() ? 0
                          : wire::CreateRecordCertificateDirect(fbb, "identity", certificate.c_str(),
                                                                "-----BEGIN CERTIFICATE-----\nchain\n")));
  auto body = schemas::FinishedBytes(fbb);
  auto signature = custody_->Sign(signer_override ? *signer_override : signing_, body);
  BOOST_REQUIRE(signature.ok());
  return schemas::BuildInjectionRecord(body, plant_, *signature);
}

std::vector<ShippedKeySet> PlantSim::Shipped() {
  std::lock_guard lock(mu_);
  return shipped_;
}
size_t PlantSim::shipments() {
  std::lock_guard lock(mu_);
  return shipments_;
}
std::vector<uint64_t> PlantSim::ConfigVersions() {
  std::lock_guard lock(mu_);
  return config_versions_;
}
std::vector<std::pair<uint32_t, uint32_t>> PlantSim::ConfigBudgets() {
  std::lock_guard lock(mu_);
  return config_budgets_;
}
std::vector<BudgetGrant> PlantSim::BudgetGrants() {
  std::lock_guard lock(mu_);
  return budget_grants_;
}
std::vector<std::vector<uint8_t>> PlantSim::PlantCaRequests() {
  std::lock_guard lock(mu_);
  return plant_ca_requests_;
}
std::vector<std::vector<std::string>> PlantSim::ConfigIssuingCas() {
  std::lock_guard lock(mu_);
  return config_issuing_cas_;
}
std::vector<std::string> PlantSim::VerificationRequests() {
  std::lock_guard lock(mu_);
  return verification_requests_;
}

}  // namespace keyline::kms::testing
