// The wire layout as released, pinned at compile time: every field's position (its vtable slot)
// and C++ type, and every enum value's number. A plant in the field reads exactly this.
//
// If one of these fails to compile, a change broke the VERSIONING RULES at the top of every
// .fbs (a field moved, was removed or retyped; an enum value was renumbered). Undo it. The
// only edit this file accepts is appending lines for fields and values appended to a schema.
#include <type_traits>
#include <utility>

#include "keyline/schemas/message_types.h"
#include "keyline/wire/ecu_link_generated.h"
#include "keyline/wire/injector_store_generated.h"
#include "keyline/wire/pks_store_generated.h"

namespace keyline {
namespace {

#define KEYLINE_PIN_FIELD(Table, field, FIELD, id, Type)                                   \
  static_assert(wire::Table::VT_##FIELD == 4 + 2 * (id),                                   \
                #Table "." #field " is no longer field " #id ": fields are append-only"); \
  static_assert(std::is_same_v<decltype(std::declval<const wire::Table&>().field()), Type>, \
                #Table "." #field " changed type: never retype a field")

#define KEYLINE_PIN_ENUM(Enum, Name, value)                                        \
  static_assert(static_cast<long long>(wire::Enum::Name) == (value),               \
                #Enum "::" #Name " is no longer " #value ": enum values are append-only")

// envelope.fbs
KEYLINE_PIN_FIELD(Envelope, message_id, MESSAGE_ID, 0, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(Envelope, stream, STREAM, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(Envelope, sequence, SEQUENCE, 2, uint64_t);
KEYLINE_PIN_FIELD(Envelope, type, TYPE, 3, wire::MessageType);
KEYLINE_PIN_FIELD(Envelope, sender, SENDER, 4, const flatbuffers::String*);
KEYLINE_PIN_FIELD(Envelope, created_at_us, CREATED_AT_US, 5, int64_t);
KEYLINE_PIN_FIELD(Envelope, payload, PAYLOAD, 6, const flatbuffers::Vector<uint8_t>*);

// kms_pks.fbs
KEYLINE_PIN_FIELD(WrappedKeySet, key_set_id, KEY_SET_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(WrappedKeySet, wrapped, WRAPPED, 1, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(WrappedKeySet, slots, SLOTS, 2, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(StockBatch, request_id, REQUEST_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(StockBatch, batch_id, BATCH_ID, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(StockBatch, plant, PLANT, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(StockBatch, product, PRODUCT, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(StockBatch, key_sets, KEY_SETS, 4, const flatbuffers::Vector<flatbuffers::Offset<wire::WrappedKeySet>>*);
KEYLINE_PIN_FIELD(StockRequest, request_id, REQUEST_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(StockRequest, product, PRODUCT, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(StockRequest, count, COUNT, 2, uint32_t);
KEYLINE_PIN_FIELD(SlotLayout, slot, SLOT, 0, uint8_t);
KEYLINE_PIN_FIELD(SlotLayout, auth_slot, AUTH_SLOT, 1, uint8_t);
KEYLINE_PIN_FIELD(SlotLayout, counter, COUNTER, 2, uint32_t);
KEYLINE_PIN_FIELD(SlotLayout, flags, FLAGS, 3, uint8_t);
KEYLINE_PIN_FIELD(Product, name, NAME, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(Product, oem, OEM, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(Product, slots, SLOTS, 2, const flatbuffers::Vector<flatbuffers::Offset<wire::SlotLayout>>*);
KEYLINE_PIN_FIELD(Product, flag_layout, FLAG_LAYOUT, 3, wire::SheFlagLayout);
KEYLINE_PIN_FIELD(Product, transport_key_ref, TRANSPORT_KEY_REF, 4, const flatbuffers::String*);
KEYLINE_PIN_FIELD(Product, min_stock, MIN_STOCK, 5, uint32_t);
KEYLINE_PIN_FIELD(Product, target_stock, TARGET_STOCK, 6, uint32_t);
KEYLINE_PIN_FIELD(Product, reservation_timeout_s, RESERVATION_TIMEOUT_S, 7, uint32_t);
KEYLINE_PIN_FIELD(Station, station_id, STATION_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(Station, curve_public_key, CURVE_PUBLIC_KEY, 1, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(SyncPolicy, mode, MODE, 0, wire::SyncMode);
KEYLINE_PIN_FIELD(SyncPolicy, interval_s, INTERVAL_S, 1, uint32_t);
KEYLINE_PIN_FIELD(ConfigUpdate, version, VERSION, 0, uint64_t);
KEYLINE_PIN_FIELD(ConfigUpdate, plant, PLANT, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(ConfigUpdate, products, PRODUCTS, 2, const flatbuffers::Vector<flatbuffers::Offset<wire::Product>>*);
KEYLINE_PIN_FIELD(ConfigUpdate, stations, STATIONS, 3, const flatbuffers::Vector<flatbuffers::Offset<wire::Station>>*);
KEYLINE_PIN_FIELD(ConfigUpdate, sync, SYNC, 4, const wire::SyncPolicy*);
KEYLINE_PIN_FIELD(VerificationRequest, barrier_id, BARRIER_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(VerificationRequest, oem, OEM, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(VerificationWatermark, barrier_id, BARRIER_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(VerificationWatermark, last_record_sequence, LAST_RECORD_SEQUENCE, 1, uint64_t);
KEYLINE_PIN_FIELD(ProductStock, product, PRODUCT, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(ProductStock, in_stock, IN_STOCK, 1, uint64_t);
KEYLINE_PIN_FIELD(ProductStock, reserved, RESERVED, 2, uint64_t);
KEYLINE_PIN_FIELD(ProductStock, requested, REQUESTED, 3, uint64_t);
KEYLINE_PIN_FIELD(ProductStock, injected, INJECTED, 4, uint64_t);
KEYLINE_PIN_FIELD(ProductStock, burned, BURNED, 5, uint64_t);
KEYLINE_PIN_FIELD(QueueDepth, peer, PEER, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(QueueDepth, stream, STREAM, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(QueueDepth, depth, DEPTH, 2, uint64_t);
KEYLINE_PIN_FIELD(QueueDepth, oldest_age_s, OLDEST_AGE_S, 3, uint32_t);
KEYLINE_PIN_FIELD(PlantStatus, plant, PLANT, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PlantStatus, config_version, CONFIG_VERSION, 1, uint64_t);
KEYLINE_PIN_FIELD(PlantStatus, stock, STOCK, 2, const flatbuffers::Vector<flatbuffers::Offset<wire::ProductStock>>*);
KEYLINE_PIN_FIELD(PlantStatus, queues, QUEUES, 3, const flatbuffers::Vector<flatbuffers::Offset<wire::QueueDepth>>*);

// pks_injector.fbs
KEYLINE_PIN_FIELD(KeyPackageRequest, request_id, REQUEST_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(KeyPackageRequest, station, STATION, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(KeyPackageRequest, product, PRODUCT, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(KeyPackageRequest, ecu_uid, ECU_UID, 3, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(PackageError, code, CODE, 0, wire::PackageErrorCode);
KEYLINE_PIN_FIELD(PackageError, message, MESSAGE, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PackageSlot, slot, SLOT, 0, uint8_t);
KEYLINE_PIN_FIELD(PackageSlot, auth_slot, AUTH_SLOT, 1, uint8_t);
KEYLINE_PIN_FIELD(PackageSlot, counter, COUNTER, 2, uint32_t);
KEYLINE_PIN_FIELD(PackageSlot, flags, FLAGS, 3, uint8_t);
KEYLINE_PIN_FIELD(PackageSlot, m1, M1, 4, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(PackageSlot, m2, M2, 5, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(PackageSlot, m3, M3, 6, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(PackageSlot, proof_digest, PROOF_DIGEST, 7, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(KeyPackage, request_id, REQUEST_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(KeyPackage, package_id, PACKAGE_ID, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(KeyPackage, key_set_id, KEY_SET_ID, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(KeyPackage, product, PRODUCT, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(KeyPackage, ecu_uid, ECU_UID, 4, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(KeyPackage, deadline_us, DEADLINE_US, 5, int64_t);
KEYLINE_PIN_FIELD(KeyPackage, slots, SLOTS, 6, const flatbuffers::Vector<flatbuffers::Offset<wire::PackageSlot>>*);
KEYLINE_PIN_FIELD(KeyPackage, error, ERROR, 7, const wire::PackageError*);
KEYLINE_PIN_FIELD(ResultSlot, slot, SLOT, 0, uint8_t);
KEYLINE_PIN_FIELD(ResultSlot, m4, M4, 1, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(ResultSlot, m5, M5, 2, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(ResultSlot, ecu_error, ECU_ERROR, 3, wire::EcuError);
KEYLINE_PIN_FIELD(ResultSlot, attempts, ATTEMPTS, 4, uint16_t);
KEYLINE_PIN_FIELD(InjectionResult, package_id, PACKAGE_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(InjectionResult, ecu_uid, ECU_UID, 1, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(InjectionResult, slots, SLOTS, 2, const flatbuffers::Vector<flatbuffers::Offset<wire::ResultSlot>>*);
KEYLINE_PIN_FIELD(InjectionResult, attempts, ATTEMPTS, 3, uint16_t);
KEYLINE_PIN_FIELD(InjectionResult, finished_at_us, FINISHED_AT_US, 4, int64_t);

// records.fbs
KEYLINE_PIN_FIELD(RecordSlot, slot, SLOT, 0, uint8_t);
KEYLINE_PIN_FIELD(RecordSlot, auth_slot, AUTH_SLOT, 1, uint8_t);
KEYLINE_PIN_FIELD(RecordSlot, counter, COUNTER, 2, uint32_t);
KEYLINE_PIN_FIELD(RecordSlot, flags, FLAGS, 3, uint8_t);
KEYLINE_PIN_FIELD(RecordSlot, m4, M4, 4, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(RecordSlot, m5, M5, 5, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(InjectionRecordBody, record_sequence, RECORD_SEQUENCE, 0, uint64_t);
KEYLINE_PIN_FIELD(InjectionRecordBody, plant, PLANT, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(InjectionRecordBody, station, STATION, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(InjectionRecordBody, product, PRODUCT, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(InjectionRecordBody, key_set_id, KEY_SET_ID, 4, const flatbuffers::String*);
KEYLINE_PIN_FIELD(InjectionRecordBody, ecu_uid, ECU_UID, 5, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(InjectionRecordBody, outcome, OUTCOME, 6, wire::RecordOutcome);
KEYLINE_PIN_FIELD(InjectionRecordBody, burn_reason, BURN_REASON, 7, const flatbuffers::String*);
KEYLINE_PIN_FIELD(InjectionRecordBody, injected_at_us, INJECTED_AT_US, 8, int64_t);
KEYLINE_PIN_FIELD(InjectionRecordBody, slots, SLOTS, 9, const flatbuffers::Vector<flatbuffers::Offset<wire::RecordSlot>>*);
KEYLINE_PIN_FIELD(InjectionRecord, body, BODY, 0, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(InjectionRecord, signer, SIGNER, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(InjectionRecord, signature, SIGNATURE, 2, const flatbuffers::Vector<uint8_t>*);

// Enum values
KEYLINE_PIN_ENUM(MessageType, NONE, 0);
KEYLINE_PIN_ENUM(MessageType, StockBatch, 1);
KEYLINE_PIN_ENUM(MessageType, ConfigUpdate, 2);
KEYLINE_PIN_ENUM(MessageType, VerificationRequest, 3);
KEYLINE_PIN_ENUM(MessageType, StockRequest, 4);
KEYLINE_PIN_ENUM(MessageType, InjectionRecord, 5);
KEYLINE_PIN_ENUM(MessageType, PlantStatus, 6);
KEYLINE_PIN_ENUM(MessageType, VerificationWatermark, 7);
KEYLINE_PIN_ENUM(MessageType, KeyPackageRequest, 8);
KEYLINE_PIN_ENUM(MessageType, KeyPackage, 9);
KEYLINE_PIN_ENUM(MessageType, InjectionResult, 10);
KEYLINE_PIN_ENUM(MessageType, AdminRequest, 11);
KEYLINE_PIN_ENUM(MessageType, AdminReply, 12);
KEYLINE_PIN_ENUM(SheFlagLayout, UNSPECIFIED, 0);
KEYLINE_PIN_ENUM(SheFlagLayout, SHE_CLASSIC, 1);
KEYLINE_PIN_ENUM(SheFlagLayout, SHE_PLUS, 2);
KEYLINE_PIN_ENUM(SyncMode, UNSPECIFIED, 0);
KEYLINE_PIN_ENUM(SyncMode, CONTINUOUS, 1);
KEYLINE_PIN_ENUM(SyncMode, INTERVAL, 2);
KEYLINE_PIN_ENUM(PackageErrorCode, UNSPECIFIED, 0);
KEYLINE_PIN_ENUM(PackageErrorCode, OUT_OF_STOCK, 1);
KEYLINE_PIN_ENUM(PackageErrorCode, UNKNOWN_PRODUCT, 2);
KEYLINE_PIN_ENUM(PackageErrorCode, UNKNOWN_STATION, 3);
KEYLINE_PIN_ENUM(PackageErrorCode, BAD_UID, 4);
KEYLINE_PIN_ENUM(PackageErrorCode, RESERVATION_BURNED, 5);
KEYLINE_PIN_ENUM(PackageErrorCode, INTERNAL, 6);
KEYLINE_PIN_ENUM(PackageErrorCode, BAD_REQUEST, 7);
KEYLINE_PIN_ENUM(EcuError, NONE, 0);
KEYLINE_PIN_ENUM(EcuError, KEY_UPDATE_ERROR, 1);
KEYLINE_PIN_ENUM(EcuError, WRITE_PROTECTED, 2);
KEYLINE_PIN_ENUM(EcuError, COUNTER_NOT_LARGER, 3);
KEYLINE_PIN_ENUM(EcuError, TIMEOUT, 4);
KEYLINE_PIN_ENUM(EcuError, NO_ANSWER, 5);
KEYLINE_PIN_ENUM(EcuError, KEY_INVALID, 6);
KEYLINE_PIN_ENUM(EcuError, GENERAL_ERROR, 7);
KEYLINE_PIN_ENUM(EcuError, WRONG_PROOF, 8);
KEYLINE_PIN_ENUM(EcuError, NOT_ATTEMPTED, 9);
KEYLINE_PIN_ENUM(RecordOutcome, UNSPECIFIED, 0);
KEYLINE_PIN_ENUM(RecordOutcome, INJECTED, 1);
KEYLINE_PIN_ENUM(RecordOutcome, BURNED, 2);

// eol.fbs
KEYLINE_PIN_FIELD(EolRequest, op, OP, 0, wire::EolOp);
KEYLINE_PIN_FIELD(EolRequest, ecu_uid, ECU_UID, 1, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(EolRequest, product, PRODUCT, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(EolSlotOutcome, slot, SLOT, 0, uint8_t);
KEYLINE_PIN_FIELD(EolSlotOutcome, ecu_error, ECU_ERROR, 1, wire::EcuError);
KEYLINE_PIN_FIELD(EolSlotOutcome, attempts, ATTEMPTS, 2, uint16_t);
KEYLINE_PIN_FIELD(EolReply, outcome, OUTCOME, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(EolReply, message, MESSAGE, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(EolReply, product, PRODUCT, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(EolReply, ecu_uid, ECU_UID, 3, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(EolReply, station, STATION, 4, const flatbuffers::String*);
KEYLINE_PIN_FIELD(EolReply, plant, PLANT, 5, const flatbuffers::String*);
KEYLINE_PIN_FIELD(EolReply, key_set_id, KEY_SET_ID, 6, const flatbuffers::String*);
KEYLINE_PIN_FIELD(EolReply, package_id, PACKAGE_ID, 7, const flatbuffers::String*);
KEYLINE_PIN_FIELD(EolReply, slots, SLOTS,
                  8, const flatbuffers::Vector<flatbuffers::Offset<wire::EolSlotOutcome>>*);
KEYLINE_PIN_FIELD(EolReply, report, REPORT, 9, const flatbuffers::String*);
KEYLINE_PIN_FIELD(EolReply, repeated, REPEATED, 10, bool);
KEYLINE_PIN_ENUM(EolOp, NONE, 0);
KEYLINE_PIN_ENUM(EolOp, PROVISION, 1);

// injector_store.fbs
KEYLINE_PIN_FIELD(StoredProvisioning, state, STATE, 0, wire::ProvisioningState);
KEYLINE_PIN_FIELD(StoredProvisioning, product, PRODUCT, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(StoredProvisioning, ecu_uid, ECU_UID, 2, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(StoredProvisioning, package, PACKAGE, 3, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(StoredProvisioning, attempts, ATTEMPTS, 4, uint16_t);
KEYLINE_PIN_FIELD(StoredProvisioning, reply, REPLY, 5, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(StoredProvisioning, result_sequence, RESULT_SEQUENCE, 6, uint64_t);
KEYLINE_PIN_FIELD(StoredProvisioning, updated_at_us, UPDATED_AT_US, 7, int64_t);
KEYLINE_PIN_ENUM(ProvisioningState, UNSPECIFIED, 0);
KEYLINE_PIN_ENUM(ProvisioningState, PACKAGE, 1);
KEYLINE_PIN_ENUM(ProvisioningState, REPORTED, 2);

// kms_pks.fbs: plant issuing CAs
KEYLINE_PIN_FIELD(ConfigUpdate, issuing_cas, ISSUING_CAS, 5, const flatbuffers::Vector<flatbuffers::Offset<wire::IssuingCa>>*);
KEYLINE_PIN_FIELD(IssuingCa, oem, OEM, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(IssuingCa, key_name, KEY_NAME, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(IssuingCa, certificate, CERTIFICATE, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(IssuingCa, oem_ca_certificate, OEM_CA_CERTIFICATE, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PlantCaRequest, request_id, REQUEST_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PlantCaRequest, oem, OEM, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PlantCaRequest, key_name, KEY_NAME, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PlantCaRequest, organization, ORGANIZATION, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PlantCaRequest, organizational_unit, ORGANIZATIONAL_UNIT, 4, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PlantCaRequest, common_name, COMMON_NAME, 5, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PlantCaRequest, challenge, CHALLENGE, 6, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(PlantCaCsr, request_id, REQUEST_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(PlantCaCsr, csr, CSR, 1, const flatbuffers::String*);
KEYLINE_PIN_ENUM(MessageType, PlantCaRequest, 13);
KEYLINE_PIN_ENUM(MessageType, PlantCaCsr, 14);

// Certificates of ECUs (issue 9): appended fields, types and values
KEYLINE_PIN_FIELD(Product, certificate, CERTIFICATE, 8, const wire::CertificateSlot*);
KEYLINE_PIN_FIELD(CertificateSlot, name, NAME, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateSlot, key_type, KEY_TYPE, 1, wire::CertificateKeyType);
KEYLINE_PIN_FIELD(CertificateSlot, organization, ORGANIZATION, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateSlot, organizational_unit, ORGANIZATIONAL_UNIT, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateSlot, common_name, COMMON_NAME, 4, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateSlot, validity_days, VALIDITY_DAYS, 5, uint32_t);
KEYLINE_PIN_FIELD(CertificateSlot, key_usage, KEY_USAGE, 6, const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>*);
KEYLINE_PIN_FIELD(CertificateSlot, extended_key_usage, EXTENDED_KEY_USAGE, 7, const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>*);
KEYLINE_PIN_ENUM(CertificateKeyType, ECDSA_P256, 1);
KEYLINE_PIN_FIELD(KeyPackage, certificate, CERTIFICATE, 8, const wire::CertificateChallenge*);
KEYLINE_PIN_FIELD(CertificateChallenge, slot, SLOT, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateChallenge, challenge, CHALLENGE, 1, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(CertificateRequest, package_id, PACKAGE_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateRequest, ecu_uid, ECU_UID, 1, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(CertificateRequest, slot, SLOT, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateRequest, csr, CSR, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateIssued, package_id, PACKAGE_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateIssued, ecu_uid, ECU_UID, 1, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(CertificateIssued, slot, SLOT, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateIssued, certificate, CERTIFICATE, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateIssued, chain, CHAIN, 4, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateIssued, confirm_challenge, CONFIRM_CHALLENGE, 5, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(CertificateIssued, error, ERROR, 6, const wire::PackageError*);
KEYLINE_PIN_FIELD(InjectionResult, certificate, CERTIFICATE, 5, const wire::CertificateResult*);
KEYLINE_PIN_FIELD(CertificateResult, slot, SLOT, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateResult, ecu_error, ECU_ERROR, 1, wire::EcuError);
KEYLINE_PIN_FIELD(CertificateResult, confirmation, CONFIRMATION, 2, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(CertificateResult, detail, DETAIL, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(InjectionRecordBody, certificate, CERTIFICATE, 10, const wire::RecordCertificate*);
KEYLINE_PIN_FIELD(RecordCertificate, slot, SLOT, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(RecordCertificate, certificate, CERTIFICATE, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(RecordCertificate, chain, CHAIN, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(RecordCertificate, confirm_challenge, CONFIRM_CHALLENGE, 3, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_FIELD(RecordCertificate, confirmation, CONFIRMATION, 4, const flatbuffers::Vector<uint8_t>*);
KEYLINE_PIN_ENUM(PackageErrorCode, CSR_REFUSED, 8);
KEYLINE_PIN_ENUM(PackageErrorCode, NO_ISSUING_CA, 9);
KEYLINE_PIN_ENUM(PackageErrorCode, BUDGET_EXHAUSTED, 10);
KEYLINE_PIN_ENUM(PackageErrorCode, NOT_RESERVED, 11);
KEYLINE_PIN_ENUM(EcuError, CERTIFICATE_NOT_ISSUED, 10);
KEYLINE_PIN_ENUM(EcuError, WRONG_CONFIRMATION, 11);
KEYLINE_PIN_ENUM(MessageType, CertificateRequest, 15);
KEYLINE_PIN_ENUM(MessageType, CertificateIssued, 16);
KEYLINE_PIN_ENUM(EcuOp, GENERATE_KEY_PAIR, 3);
KEYLINE_PIN_ENUM(EcuOp, STORE_CERTIFICATE, 4);
KEYLINE_PIN_ENUM(EcuStatus, CERTIFICATE_MISMATCH, 10);
KEYLINE_PIN_FIELD(StoredReservation, certificate, CERTIFICATE, 8, const wire::StoredCertificate*);

// The plants' issuing budgets (issue 9, part 3)
KEYLINE_PIN_FIELD(IssuingCa, budget_min, BUDGET_MIN, 4, uint32_t);
KEYLINE_PIN_FIELD(IssuingCa, budget_target, BUDGET_TARGET, 5, uint32_t);
KEYLINE_PIN_FIELD(PlantStatus, certificate_budgets, CERTIFICATE_BUDGETS, 4, const flatbuffers::Vector<flatbuffers::Offset<wire::CertificateBudgetLevel>>*);
KEYLINE_PIN_FIELD(CertificateBudgetRequest, request_id, REQUEST_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateBudgetRequest, oem, OEM, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateBudgetRequest, count, COUNT, 2, uint32_t);
KEYLINE_PIN_FIELD(CertificateBudgetGrant, request_id, REQUEST_ID, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateBudgetGrant, grant_id, GRANT_ID, 1, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateBudgetGrant, plant, PLANT, 2, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateBudgetGrant, oem, OEM, 3, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateBudgetGrant, count, COUNT, 4, uint32_t);
KEYLINE_PIN_FIELD(CertificateBudgetLevel, oem, OEM, 0, const flatbuffers::String*);
KEYLINE_PIN_FIELD(CertificateBudgetLevel, granted, GRANTED, 1, uint64_t);
KEYLINE_PIN_FIELD(CertificateBudgetLevel, issued, ISSUED, 2, uint64_t);
KEYLINE_PIN_FIELD(CertificateBudgetLevel, pending, PENDING, 3, uint64_t);
KEYLINE_PIN_FIELD(CertificateBudgetLevel, requested, REQUESTED, 4, uint64_t);
KEYLINE_PIN_ENUM(MessageType, CertificateBudgetRequest, 17);
KEYLINE_PIN_ENUM(MessageType, CertificateBudgetGrant, 18);

#undef KEYLINE_PIN_FIELD
#undef KEYLINE_PIN_ENUM

}  // namespace
}  // namespace keyline
