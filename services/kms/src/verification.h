// Verification files on request (issue 6, item 5).
//
// Open(oem): a VerificationRequest to every plant that was shipped key sets of the OEM, in one
// write with the verification record. A plant answers on its records stream with a watermark
// after the records it covers, so when the watermark is applied every record before it is too.
// Export(id): once no plant is pending, writes the JSON Lines file (one line per injected slot)
// and FILE.sig (the KMS's Ed25519 signature over the file's bytes, hex) into the exports dir.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "audit_log.h"
#include "catalog.h"
#include "keyline/kms/kms.h"
#include "kms_context.h"
#include "record_ingest.h"

namespace keyline::kms {

struct VerificationView {
  std::string id;
  std::string oem;
  int64_t requested_at_us = 0;
  std::vector<std::string> plants;
  std::vector<std::string> pending;
};

class Verifications {
 public:
  Verifications(KmsContext* context, Catalog* catalog, AuditLog* audit, RecordIngest* records,
                std::filesystem::path exports_dir)
      : context_(context), catalog_(catalog), audit_(audit), records_(records),
        exports_dir_(std::move(exports_dir)) {}

  [[nodiscard]] Status Load();
  [[nodiscard]] StatusOr<VerificationView> Open(const std::string& oem, const std::string& actor);
  [[nodiscard]] StatusOr<VerificationView> Get(const std::string& id) const;
  std::vector<VerificationView> List() const;
  // Inside the link's write: a plant's watermark.
  [[nodiscard]] Status ApplyWatermark(const std::string& plant, const std::string& barrier_id,
                                      uint64_t last_record_sequence, broker::WriteContext& write);
  // Writes (once) and returns the export of a complete verification. FAILED_PRECONDITION while
  // plants are pending.
  [[nodiscard]] StatusOr<ExportResult> Export(const std::string& id, const std::string& actor);
  // Writes the lines of every injected record of `oem` to `out` (also used by the benchmark).
  [[nodiscard]] StatusOr<ExportResult> WriteExport(const std::string& oem, const std::filesystem::path& out);

 private:
  KmsContext* context_;
  Catalog* catalog_;
  AuditLog* audit_;
  RecordIngest* records_;
  std::filesystem::path exports_dir_;
  uint64_t next_id_ = 1;
};

}  // namespace keyline::kms
