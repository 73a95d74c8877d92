// The injector agent against the real PKS (in process, with a stand-in KMS: plant_harness.h)
// and the real ECU simulator behind a real CurveZMQ RPC endpoint: every ECU is loaded through
// the SHE protocol, and the KMS side sees the records the PKS writes.
#include <boost/test/unit_test.hpp>

#include <map>

#include "keyline/common/hex.h"
#include "keyline/hsm/x509.h"
#include "keyline/wire/eol_generated.h"
#include "station_harness.h"

namespace keyline::injector {

// For Boost.Test's messages.
std::ostream& operator<<(std::ostream& out, EcuError error) { return out << EcuErrorName(error); }

namespace {

using namespace testing;

BOOST_AUTO_TEST_CASE(provisions_an_ecu_and_the_kms_gets_the_injected_record) {
  Station station;
  station.StartAgent();
  ProvisionOutcome outcome = station.agent().Provision(Uid(1), kProduct);
  BOOST_TEST_INFO(outcome.message);
  BOOST_TEST(outcome.outcome == kOutcomeProvisioned);
  BOOST_TEST(outcome.report == kReportAcknowledged);
  BOOST_TEST(!outcome.repeated);
  BOOST_REQUIRE(outcome.slots.size() == 3u);
  for (const SlotOutcome& slot : outcome.slots) {
    BOOST_TEST(slot.error == EcuError::kNone);
    BOOST_TEST(slot.attempts == 1);
  }
  BOOST_TEST(station.ecu().LoadedSlots(Uid(1)) == (std::vector<uint8_t>{1, 4, 5}),
             boost::test_tools::per_element());
  auto records = station.Records(1);
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_TEST(records[0].injected);
  BOOST_TEST(records[0].signature_valid);
  BOOST_TEST(records[0].station == kStation);
  BOOST_TEST(records[0].key_set_id == outcome.key_set_id);
  BOOST_TEST(records[0].slots_with_proof == 3u);

  // Asked again (the tester retried): the same answer from the journal, nothing loaded again.
  uint64_t loads = station.ecu().simulator().counters().loads;
  ProvisionOutcome again = station.agent().Provision(Uid(1), kProduct);
  BOOST_TEST(again.outcome == kOutcomeProvisioned);
  BOOST_TEST(again.repeated);
  BOOST_TEST(again.key_set_id == outcome.key_set_id);
  BOOST_TEST(station.ecu().simulator().counters().loads == loads);
  BOOST_TEST(station.agent().Snapshot().provisioned == 1u);
}

BOOST_AUTO_TEST_CASE(the_eol_endpoint_serves_the_tester_key_and_names_a_bad_field) {
  Station station;
  station.StartAgent();
  auto outcome = CallProvision(station.config(), Uid(2), kProduct, 20000);
  BOOST_REQUIRE_MESSAGE(outcome.ok(), outcome.status().ToString());
  BOOST_TEST(outcome->outcome == kOutcomeProvisioned);
  BOOST_TEST(outcome->station == kStation);
  BOOST_TEST(outcome->plant == "plant-a");

  // A UID of the wrong length: refused with the field named, nothing reserved.
  auto tester = broker::CurveKeyPair::Load(station.config().tester_curve_key_file).value();
  auto agent_key = broker::LoadCurvePublicKeyFile(station.config().curve_key_file).value();
  auto client = broker::RpcClient::Connect({.server_endpoint = station.agent().eol_endpoint(),
                                            .server_key = agent_key,
                                            .keys = tester})
                    .value();
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<uint8_t> short_uid(14, 0xAB);
  fbb.Finish(wire::CreateEolRequest(fbb, wire::EolOp::PROVISION, fbb.CreateVector(short_uid),
                                    fbb.CreateString(kProduct)));
  auto reply = client->Call(std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()), 5000);
  BOOST_REQUIRE(!reply.ok());
  BOOST_TEST(reply.status().message().find("EolRequest.ecu_uid") != std::string::npos);

  // A caller with any other key is not admitted: no answer.
  auto stranger = broker::RpcClient::Connect({.server_endpoint = station.agent().eol_endpoint(),
                                              .server_key = agent_key,
                                              .keys = broker::CurveKeyPair::Generate().value()})
                      .value();
  auto refused = stranger->Call(std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()),
                                1000);
  BOOST_TEST(!refused.ok());
  BOOST_TEST(station.plant().pks().Snapshot().open_reservations == 0u);
}

BOOST_AUTO_TEST_CASE(pks_refusals_reach_the_tester_with_their_code) {
  Station station(/*stock=*/0);
  station.StartAgent();
  ProvisionOutcome out_of_stock = station.agent().Provision(Uid(3), kProduct);
  BOOST_TEST(out_of_stock.outcome == "OUT_OF_STOCK");
  BOOST_TEST(out_of_stock.slots.empty());
  ProvisionOutcome unknown = station.agent().Provision(Uid(3), "no-such-product");
  BOOST_TEST(unknown.outcome == "UNKNOWN_PRODUCT");
  BOOST_TEST(station.ecu().simulator().counters().loads == 0u);
}

BOOST_AUTO_TEST_CASE(a_pks_that_is_down_then_back_loses_nothing) {
  Station station(/*stock=*/5, /*package_timeout_ms=*/800);
  station.plant().StopPks();
  station.StartAgent();
  // No PKS: the tester hears so quickly; the request waits in the outbox.
  ProvisionOutcome unreachable = station.agent().Provision(Uid(4), kProduct);
  BOOST_TEST(unreachable.outcome == kOutcomePksUnreachable);

  // The PKS comes back and answers the queued request; the package is journaled.
  station.plant().StartPks();
  for (int i = 0; i < 100 && station.agent().Snapshot().pending == 0; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  BOOST_REQUIRE(station.agent().Snapshot().pending == 1u);

  // The PKS goes down again before the tester asks again: the agent loads from its journal,
  // and the result waits in its outbox.
  station.plant().StopPks();
  ProvisionOutcome offline = station.agent().Provision(Uid(4), kProduct);
  BOOST_TEST_INFO(offline.message);
  BOOST_TEST(offline.outcome == kOutcomeProvisioned);
  BOOST_TEST(offline.report == kReportQueued);
  BOOST_TEST(station.agent().Snapshot().messages_queued >= 1u);

  // Even an agent restart in between loses nothing: the PKS gets the result once it is back.
  station.StopAgent();
  station.StartAgent();
  station.plant().StartPks();
  auto records = station.Records(1);
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_TEST(records[0].injected);
  BOOST_TEST(records[0].key_set_id == offline.key_set_id);
  for (int i = 0; i < 100 && station.agent().Snapshot().messages_queued != 0; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  BOOST_TEST(station.agent().Snapshot().messages_queued == 0u);
  auto pks = station.plant().pks().Snapshot();
  BOOST_REQUIRE(pks.products.size() == 1u);
  BOOST_TEST(pks.products[0].injected == 1u);
  BOOST_TEST(pks.products[0].reserved == 0u);
}

BOOST_AUTO_TEST_CASE(a_silent_ecu_is_retried_then_reported_and_burned) {
  Station station;
  station.StartAgent();
  station.ecu().simulator().SetFaults({.timeout = 1.0}, 7);
  ProvisionOutcome outcome = station.agent().Provision(Uid(5), kProduct);
  BOOST_TEST(outcome.outcome == "TIMEOUT");
  BOOST_REQUIRE(outcome.slots.size() == 3u);
  BOOST_TEST(outcome.slots[0].attempts == 3);
  BOOST_TEST(outcome.slots[1].error == EcuError::kNotAttempted);
  BOOST_TEST(outcome.slots[2].error == EcuError::kNotAttempted);
  auto records = station.Records(1);
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_TEST(!records[0].injected);
  BOOST_TEST(station.agent().Snapshot().failed == 1u);
}

BOOST_AUTO_TEST_CASE(a_lost_answer_whose_load_landed_is_not_resent_forever) {
  Station station;
  station.StartAgent();
  // Power lost after the ECU stored the key: the resend is refused (SHE.md field notes). The
  // first slot is MASTER_ECU_KEY, authorised by itself: its resend no longer verifies.
  station.ecu().simulator().SetFaults({.power_loss = 1.0}, 7);
  ProvisionOutcome outcome = station.agent().Provision(Uid(6), kProduct);
  BOOST_TEST(outcome.outcome == "KEY_UPDATE_ERROR");
  BOOST_REQUIRE(!outcome.slots.empty());
  BOOST_TEST(outcome.slots[0].attempts == 2);
  BOOST_TEST(station.ecu().LoadedSlots(Uid(6)) == (std::vector<uint8_t>{1}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_wrong_proof_is_caught_by_the_injector_itself) {
  Station station;
  station.StartAgent();
  station.ecu().simulator().SetFaults({.wrong_proof = 1.0}, 7);
  ProvisionOutcome outcome = station.agent().Provision(Uid(7), kProduct);
  BOOST_TEST(outcome.outcome == "WRONG_PROOF");
  BOOST_REQUIRE(!outcome.slots.empty());
  BOOST_TEST(outcome.slots[0].error == EcuError::kWrongProof);
  auto records = station.Records(1);
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_TEST(!records[0].injected);
  BOOST_TEST(records[0].burn_reason.find("WRONG_PROOF") != std::string::npos);
}

// A product with a certificate slot: after the SHE slots the ECU makes its key pair, the PKS's
// issuing CA certifies it, the ECU stores the certificate and confirms; the record carries it
// and it chains to the OEM root. A CA missing at the plant refuses the package, before any key
// reaches the ECU, with a clear reason.
BOOST_AUTO_TEST_CASE(a_certificate_slot_ends_with_a_confirmed_certificate_chaining_to_the_oem) {
  Station station;
  const ProductSpec product{.name = kProduct, .certificate_slot = true};
  station.plant().Configure({product});  // no issuing CA yet
  for (int i = 0; i < 200 && station.plant().pks().Snapshot().config_version < 2; ++i) {
    std::this_thread::sleep_for(25ms);
  }
  station.StartAgent();
  ProvisionOutcome refused = station.agent().Provision(Uid(8), kProduct);
  BOOST_TEST(refused.outcome == "NO_ISSUING_CA", refused.message);
  BOOST_TEST(refused.message.find("holds no issuing CA") != std::string::npos, refused.message);
  BOOST_TEST(!refused.certificate.has_value());

  const std::string root = station.plant().InstallIssuingCa({product});
  for (int i = 0; i < 200 && station.plant().pks().Snapshot().issuing_cas.empty(); ++i) {
    std::this_thread::sleep_for(25ms);
  }
  ProvisionOutcome outcome = station.agent().Provision(Uid(9), kProduct);
  BOOST_TEST(outcome.outcome == kOutcomeProvisioned, outcome.message);
  BOOST_REQUIRE(outcome.certificate.has_value());
  BOOST_TEST(outcome.certificate->slot == "identity");
  BOOST_TEST(outcome.certificate->error == EcuError::kNone);
  const std::string certificate = outcome.certificate->certificate;
  auto info = hsm::InspectCertificate(certificate);
  BOOST_REQUIRE(info.ok());
  BOOST_TEST(info->subject.serial_number == ToHex(Uid(9)));

  std::map<std::string, std::string> stored;
  for (const auto& ecu : station.ecu().simulator().Ecus()) {
    if (ecu.uid == Uid(9)) stored = ecu.certificates;
  }
  BOOST_TEST(stored["identity"] == certificate);

  // The refused ECU got no package: one record, of the provisioned one.
  auto records = station.Records(1);
  BOOST_REQUIRE(records.size() == 1u);
  BOOST_TEST(records[0].injected, records[0].burn_reason);
  BOOST_TEST(records[0].certificate == certificate);
  std::vector<std::string> chain{records[0].certificate_chain};
  Status chains = hsm::VerifyChain(certificate, chain, root,
                                   std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
  BOOST_TEST(chains.ok(), chains.ToString());

  // Asked again: the journal's answer, nothing generated or issued again.
  uint64_t csrs = station.ecu().simulator().counters().csrs;
  ProvisionOutcome again = station.agent().Provision(Uid(9), kProduct);
  BOOST_TEST(again.repeated);
  BOOST_REQUIRE(again.certificate.has_value());
  BOOST_TEST(again.certificate->certificate == certificate);
  BOOST_TEST(station.ecu().simulator().counters().csrs == csrs);
}

}  // namespace
}  // namespace keyline::injector
