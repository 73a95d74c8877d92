// The injector agent beside one EOL station: the PKS link (a durable outbox for requests and
// results), the ECU link, the journal, and the local endpoint the EOL tester calls.
//
//   ASSIGN_OR_RETURN(InjectorConfig config, LoadInjectorConfig("injector.toml"));
//   ASSIGN_OR_RETURN(std::unique_ptr<InjectorService> agent, InjectorService::Start(config));
//   agent.reset();   // stops: endpoint and links closed, everything committed is durable
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "keyline/common/status.h"
#include "keyline/injector/injector_config.h"
#include "keyline/injector/provision_outcome.h"

namespace keyline::injector {

// What `keyline-injector status` shows.
struct InjectorSnapshot {
  std::string station;
  std::string plant;
  uint64_t provisioned = 0;      // ECUs reported provisioned
  uint64_t failed = 0;           // ECUs reported failed
  uint64_t pending = 0;          // packages fetched, not (yet) reported
  uint64_t messages_queued = 0;  // requests and results the PKS has not acknowledged yet
  int64_t pks_last_contact_us = 0;  // 0: never
  std::string pks_last_error;
  bool pks_connected = false;    // live agents only
};

class InjectorService {
 public:
  // Reads the key files (creating the tester's key pair if missing), opens the data dir,
  // connects to the PKS and the ECU, and binds the EOL endpoint.
  static StatusOr<std::unique_ptr<InjectorService>> Start(const InjectorConfig& config);
  virtual ~InjectorService() = default;

  // The bound EOL endpoint (with the real port when the config asked for port 0).
  virtual std::string eol_endpoint() const = 0;
  // What the EOL endpoint does for one call, without the endpoint.
  virtual ProvisionOutcome Provision(const EcuUid& uid, const std::string& product) = 0;
  virtual InjectorSnapshot Snapshot() const = 0;
};

// The status of an agent from its data dir, whether it runs or not.
[[nodiscard]] StatusOr<InjectorSnapshot> ReadInjectorStatus(const InjectorConfig& config);

// The EOL tester's call (what `keyline-injector provision` does): connects to the agent's EOL
// endpoint with the tester's key pair from the config and asks it to provision `uid` as
// `product`. Errors are the call's (agent down, key refused); the outcome is in the result.
[[nodiscard]] StatusOr<ProvisionOutcome> CallProvision(const InjectorConfig& config,
                                                       const EcuUid& uid,
                                                       const std::string& product,
                                                       int timeout_ms);

}  // namespace keyline::injector
