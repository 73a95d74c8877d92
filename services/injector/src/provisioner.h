// The injector's one job: provision ECU `uid` as product P, once.
//
//   1. The journal has a REPORTED entry: answer what was answered then (repeated).
//   2. Else the KeyPackage: from the journal (an earlier call or a crash left it), or a
//      KeyPackageRequest through the durable outbox to the PKS and a wait for the answer.
//   3. Count the attempt durably, load every slot through the EcuLink, check each proof; then
//      the certificate slot, if the package has one (certificate_step.h).
//   4. In ONE write: the InjectionResult into the outbox and the journal entry REPORTED.
//   5. Wait a little for the PKS's acknowledgement (it recorded the result), then answer.
//
// Calls are served one at a time: there is one ECU link and one ECU on the station.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "keyline/injector/ecu_link.h"
#include "keyline/injector/provision_outcome.h"
#include "journal.h"
#include "slot_loader.h"

namespace keyline::broker {
class MessageStore;
class WriteContext;
struct Delivery;
}  // namespace keyline::broker

namespace keyline::injector {

// The PKS's stream names as this station sees them (services/pks/src/plant_core.h).
inline constexpr char kRequestsStream[] = "requests";

struct ProvisionerOptions {
  std::string station;
  std::string plant;
  LoadPolicy load;
  std::chrono::milliseconds package_timeout{10000};
  std::chrono::milliseconds ack_wait{2000};
};

class Provisioner {
 public:
  // `store`, `journal` and `ecu` must outlive the provisioner.
  Provisioner(broker::MessageStore* store, const Journal* journal, EcuLink* ecu,
              ProvisionerOptions options);
  ~Provisioner();
  Provisioner(const Provisioner&) = delete;
  Provisioner& operator=(const Provisioner&) = delete;

  // The PKS link's DeliveryHandler: KeyPackages go to the journal (in the delivery's write)
  // and to the call waiting for them; CertificateIssued to the call waiting for it.
  Status OnDelivery(const broker::Delivery& delivery, broker::WriteContext& write);

  ProvisionOutcome Provision(const EcuUid& uid, const std::string& product);

 private:
  // The package for (product, uid): the journal's, else fetched from the PKS. Fills `out` and
  // returns an empty vector when there is none to load.
  std::vector<uint8_t> PackageFor(const EcuUid& uid, const std::string& product,
                                  const std::optional<JournalEntry>& entry, ProvisionOutcome& out);
  std::vector<uint8_t> FetchPackage(const EcuUid& uid, const std::string& product,
                                    ProvisionOutcome& out);
  // Queues what `send` writes for the PKS and waits up to package_timeout for the answer that
  // OnDelivery files under `key`; empty when none came.
  StatusOr<std::vector<uint8_t>> SendAndWait(
      const std::string& key, const std::function<Status(broker::WriteContext&)>& send);
  ProvisionOutcome LoadAndReport(const EcuUid& uid, const std::string& product,
                                 std::vector<uint8_t> package_bytes, uint16_t attempts,
                                 ProvisionOutcome out);
  std::string ReportState(uint64_t result_sequence) const;

  broker::MessageStore* store_;
  const Journal* journal_;
  EcuLink* ecu_;
  ProvisionerOptions options_;

  std::mutex call_mu_;  // one provisioning at a time

  std::mutex mu_;  // guards the two below; the link's thread fills them
  // Also woken when the PKS acknowledges the requests stream (a result applied).
  std::condition_variable arrived_cv_;
  uint64_t ack_listener_ = 0;
  // Answers a call waits for: a KeyPackage by request id, a CertificateIssued by
  // CertificateKey(package id).
  std::set<std::string> awaited_;
  std::map<std::string, std::vector<uint8_t>> arrived_;
  uint64_t request_counter_ = 0;
};

}  // namespace keyline::injector
