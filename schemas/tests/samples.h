// Sample messages with every field set, and readers that touch every field of a decoded one.
//
// ReadAll is how the corruption tests prove "decodes without crashing": it reads every field,
// string and vector element, so under ASan a decode that let an out-of-bounds offset through
// would be reported.
#pragma once

#include <cstdint>
#include <vector>

#include "keyline/schemas/message_types.h"

namespace keyline::schemas::testing {

// A finished FlatBuffer of T with every field set to a recognisable value.
template <WireMessage T>
std::vector<uint8_t> Sample();

template <>
std::vector<uint8_t> Sample<wire::StockBatch>();
template <>
std::vector<uint8_t> Sample<wire::ConfigUpdate>();
template <>
std::vector<uint8_t> Sample<wire::VerificationRequest>();
template <>
std::vector<uint8_t> Sample<wire::StockRequest>();
template <>
std::vector<uint8_t> Sample<wire::InjectionRecord>();
template <>
std::vector<uint8_t> Sample<wire::PlantStatus>();
template <>
std::vector<uint8_t> Sample<wire::VerificationWatermark>();
template <>
std::vector<uint8_t> Sample<wire::KeyPackageRequest>();
template <>
std::vector<uint8_t> Sample<wire::KeyPackage>();
template <>
std::vector<uint8_t> Sample<wire::InjectionResult>();
// admin_test.cc
template <>
std::vector<uint8_t> Sample<wire::AdminRequest>();
template <>
std::vector<uint8_t> Sample<wire::AdminReply>();
template <>
std::vector<uint8_t> Sample<wire::PlantCaRequest>();
template <>
std::vector<uint8_t> Sample<wire::PlantCaCsr>();
template <>
std::vector<uint8_t> Sample<wire::CertificateRequest>();
template <>
std::vector<uint8_t> Sample<wire::CertificateIssued>();
template <>
std::vector<uint8_t> Sample<wire::CertificateBudgetRequest>();
template <>
std::vector<uint8_t> Sample<wire::CertificateBudgetGrant>();

// The serialised InjectionRecordBody inside Sample<wire::InjectionRecord>().
std::vector<uint8_t> SampleInjectionRecordBody();

// Reads every field (recursively); returns a checksum so the reads cannot be optimised away.
uint64_t ReadAll(const wire::StockBatch& m);
uint64_t ReadAll(const wire::ConfigUpdate& m);
uint64_t ReadAll(const wire::VerificationRequest& m);
uint64_t ReadAll(const wire::StockRequest& m);
uint64_t ReadAll(const wire::InjectionRecord& m);
uint64_t ReadAll(const wire::InjectionRecordBody& m);
uint64_t ReadAll(const wire::PlantStatus& m);
uint64_t ReadAll(const wire::VerificationWatermark& m);
uint64_t ReadAll(const wire::KeyPackageRequest& m);
uint64_t ReadAll(const wire::KeyPackage& m);
uint64_t ReadAll(const wire::InjectionResult& m);
uint64_t ReadAll(const wire::AdminRequest& m);  // admin_test.cc
uint64_t ReadAll(const wire::AdminReply& m);    // admin_test.cc
uint64_t ReadAll(const wire::PlantCaRequest& m);
uint64_t ReadAll(const wire::PlantCaCsr& m);
uint64_t ReadAll(const wire::CertificateRequest& m);
uint64_t ReadAll(const wire::CertificateIssued& m);
uint64_t ReadAll(const wire::CertificateBudgetRequest& m);
uint64_t ReadAll(const wire::CertificateBudgetGrant& m);
uint64_t ReadAll(const wire::Envelope& m);

// n bytes counting up from `first` (a recognisable stand-in for UIDs, proofs, keys).
std::vector<uint8_t> Counting(size_t n, uint8_t first);

}  // namespace keyline::schemas::testing

namespace keyline::schemas::testing {

// Calls f.template operator()<T>() for every message table T, in MessageType order.
template <typename F>
void ForEachMessageTable(F&& f) {
  f.template operator()<wire::StockBatch>();
  f.template operator()<wire::ConfigUpdate>();
  f.template operator()<wire::VerificationRequest>();
  f.template operator()<wire::StockRequest>();
  f.template operator()<wire::InjectionRecord>();
  f.template operator()<wire::PlantStatus>();
  f.template operator()<wire::VerificationWatermark>();
  f.template operator()<wire::KeyPackageRequest>();
  f.template operator()<wire::KeyPackage>();
  f.template operator()<wire::InjectionResult>();
  f.template operator()<wire::AdminRequest>();
  f.template operator()<wire::AdminReply>();
  f.template operator()<wire::PlantCaRequest>();
  f.template operator()<wire::PlantCaCsr>();
  f.template operator()<wire::CertificateRequest>();
  f.template operator()<wire::CertificateIssued>();
  f.template operator()<wire::CertificateBudgetRequest>();
  f.template operator()<wire::CertificateBudgetGrant>();
}

}  // namespace keyline::schemas::testing
