// The central key management system (issue 6): imports OEM key batches, ships stock to plants,
// takes their injection records, assembles verification files, and keeps a hash-chained audit
// log. Plants reach it over a LinkServer (store and forward, docs/link-protocol.md); keylinectl
// over an RpcServer with a registered admin key (schemas/admin.fbs). Operations: docs/kms.md.
//
//   ASSIGN_OR_RETURN(auto kms, Kms::Open(options, std::move(custody)));
//   RETURN_IF_ERROR(kms->Serve());          // binds the link and admin endpoints
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "keyline/broker/curve_keys.h"
#include "keyline/common/status.h"
#include "keyline/hsm/key_custody.h"

namespace keyline::kms {

struct KmsOptions {
  // The KMS's data directory: RocksDB ("db"), kept batch files ("batches"), uploads, exports.
  // Required; created if missing.
  std::filesystem::path data_dir;
  // Where plants connect (LinkServer). Default "tcp://0.0.0.0:7100"; port 0 picks one.
  std::string link_bind = "tcp://0.0.0.0:7100";
  // Where keylinectl connects (RpcServer). Default "tcp://127.0.0.1:7200"; port 0 picks one.
  std::string admin_bind = "tcp://127.0.0.1:7200";
  // The KMS's CurveZMQ key pair file, shared by both endpoints; created (0600) if missing.
  // Default: <data_dir>/kms.curve.
  std::filesystem::path curve_key_file;
  // Admin public keys (Z85 decoded); each is admitted as identity "admin". Default: none
  // (then nobody can administer the KMS).
  std::vector<broker::CurvePublicKey> admin_keys;
  // Files holding one admin public key each, read at start (a key made at installation time,
  // mounted where the config says). Default: none.
  std::vector<std::filesystem::path> admin_key_files;
  // Link heartbeat interval / time-out in ms. Defaults 1000 / 5000.
  int heartbeat_interval_ms = 1000;
  int heartbeat_timeout_ms = 5000;
};

struct ImportResult {
  std::string batch_id;
  std::string oem;
  std::string product;
  uint64_t key_sets = 0;  // in the file
  uint64_t added = 0;     // stored by this call (0 when the batch was imported before)
  bool already_imported = false;
};

struct AuditReport {
  uint64_t entries = 0;
  bool intact = true;
  std::vector<std::string> problems;  // "entry 17: hash does not match its content (changed)"
};

struct ExportResult {
  std::filesystem::path file;
  std::filesystem::path signature;
  uint64_t lines = 0;         // every line: one per SHE slot, one per ECU certificate
  uint64_t certificates = 0;  // of which ECU certificate lines
  uint64_t records = 0;
  uint64_t bytes = 0;
};

using ImportProgressFn = std::function<void(uint64_t done, uint64_t total)>;

class Kms {
 public:
  // Opens (or creates) the data dir, loads the catalog and finishes imports a crash interrupted.
  // `custody` holds the KMS's keys ("kms-import" X25519, "kms-signing" Ed25519, created on first
  // use) and every key set's wrapped keys can be opened only by it.
  static StatusOr<std::unique_ptr<Kms>> Open(KmsOptions options, std::unique_ptr<hsm::KeyCustody> custody);
  ~Kms();
  Kms(const Kms&) = delete;
  Kms& operator=(const Kms&) = delete;

  // Binds the link and admin endpoints and serves until destroyed.
  [[nodiscard]] Status Serve();
  std::string link_endpoint() const;
  std::string admin_endpoint() const;

  // Public keys others need: the import key for OEM batches, the verification signing key, and
  // the Curve key plants and keylinectl dial.
  hsm::PublicKey import_public_key() const;
  hsm::PublicKey signing_public_key() const;
  broker::CurvePublicKey curve_public_key() const;

  // One admin request (AdminRequest FlatBuffer) from `peer`; the AdminReply FlatBuffer.
  [[nodiscard]] StatusOr<std::vector<uint8_t>> HandleAdmin(const std::string& peer,
                                                           std::span<const uint8_t> request);

  // Direct library calls (benchmark, tests): the same code paths the admin commands use.
  [[nodiscard]] StatusOr<ImportResult> ImportBatchFile(const std::filesystem::path& path,
                                                       const std::string& actor,
                                                       const ImportProgressFn& progress = {});
  [[nodiscard]] StatusOr<AuditReport> VerifyAudit() const;
  [[nodiscard]] StatusOr<ExportResult> ExportInjected(const std::string& oem,
                                                      const std::filesystem::path& out);
  // Applies messages from `plant` (StockRequest, InjectionRecord, VerificationWatermark or
  // PlantStatus payloads; `message_type` is their wire::MessageType) through the same handler
  // the link uses, all in one synced write (benchmark, tests). Replies are queued as usual.
  [[nodiscard]] Status ApplyFromPlant(const std::string& plant, uint16_t message_type,
                                      std::span<const std::vector<uint8_t>> payloads);
  // The status page as one JSON object (keylinectl status --json prints it).
  [[nodiscard]] StatusOr<std::string> StatusJson() const;

  class Impl;

 private:
  explicit Kms(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keyline::kms
