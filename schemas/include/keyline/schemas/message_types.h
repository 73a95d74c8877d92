// Compile-time link between each message table and its MessageType value.
//
// MessageTraits<T> exists exactly for the tables that travel as an Envelope payload; using a
// table that is not one (InjectionRecordBody, a nested table) where a message is expected does
// not compile.
#pragma once

#include <concepts>
#include <string>
#include <string_view>

#include "keyline/wire/admin_generated.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/pks_injector_generated.h"
#include "keyline/wire/records_generated.h"

namespace keyline::schemas {

template <typename T>
struct MessageTraits;  // defined below for every message table only

#define KEYLINE_WIRE_MESSAGE_(Table)                                     \
  template <>                                                            \
  struct MessageTraits<wire::Table> {                                    \
    static constexpr wire::MessageType kType = wire::MessageType::Table; \
    static constexpr std::string_view kName = #Table;                    \
  }

KEYLINE_WIRE_MESSAGE_(StockBatch);
KEYLINE_WIRE_MESSAGE_(ConfigUpdate);
KEYLINE_WIRE_MESSAGE_(VerificationRequest);
KEYLINE_WIRE_MESSAGE_(StockRequest);
KEYLINE_WIRE_MESSAGE_(InjectionRecord);
KEYLINE_WIRE_MESSAGE_(PlantStatus);
KEYLINE_WIRE_MESSAGE_(VerificationWatermark);
KEYLINE_WIRE_MESSAGE_(KeyPackageRequest);
KEYLINE_WIRE_MESSAGE_(KeyPackage);
KEYLINE_WIRE_MESSAGE_(InjectionResult);
KEYLINE_WIRE_MESSAGE_(AdminRequest);
KEYLINE_WIRE_MESSAGE_(AdminReply);
KEYLINE_WIRE_MESSAGE_(PlantCaRequest);
KEYLINE_WIRE_MESSAGE_(PlantCaCsr);
KEYLINE_WIRE_MESSAGE_(CertificateRequest);
KEYLINE_WIRE_MESSAGE_(CertificateIssued);
KEYLINE_WIRE_MESSAGE_(CertificateBudgetRequest);
KEYLINE_WIRE_MESSAGE_(CertificateBudgetGrant);

#undef KEYLINE_WIRE_MESSAGE_

// A table that travels as an Envelope payload.
template <typename T>
concept WireMessage = requires {
  { MessageTraits<T>::kType } -> std::convertible_to<wire::MessageType>;
};

// True for the message types this build can decode (not NONE, not newer than this build).
bool IsKnownMessageType(wire::MessageType type);

// "KeyPackage" for a known type, "NONE" for 0, "MessageType 42" for a number this build does not
// know (a newer peer's), so a log line never prints an empty name.
std::string MessageTypeName(wire::MessageType type);

}  // namespace keyline::schemas
