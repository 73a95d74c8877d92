// KeySetStore: imports OEM batch files and keeps each key set's record (state, wrapped keys).
//
// An import is checked completely (structure, OEM signature, product, import key) before
// anything is stored. The file is then kept in the data dir and its chunks are stored in order,
// each chunk with the batch's progress in the same write; the key sets become stock (visible to
// the Allocator) only in the final write, together with the batch's IMPORTED state and its audit
// entry. A restart in between resumes from the kept file; a chunk that cannot be opened takes
// back everything the batch stored. A batch imported twice adds nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "audit_log.h"
#include "catalog.h"
#include "keyline/kms/kms.h"
#include "kms_context.h"

namespace keyline::kms {


class KeySetStore {
 public:
  KeySetStore(KmsContext* context, Catalog* catalog, AuditLog* audit, std::filesystem::path staging_dir)
      : context_(context), catalog_(catalog), audit_(audit), staging_dir_(std::move(staging_dir)) {}

  [[nodiscard]] Status Load();

  // Imports the batch file at `path` (copied into the staging dir first unless it is there).
  [[nodiscard]] StatusOr<ImportResult> Import(const std::filesystem::path& path, const std::string& actor,
                                              const ImportProgressFn& progress = {});

  // Finishes imports a crash interrupted. Call once at start, before serving.
  [[nodiscard]] Status ResumeUnfinished();

  std::filesystem::path StagedPath(const std::string& batch_id) const {
    return staging_dir_ / (batch_id + ".klb");
  }

 private:
  StatusOr<ImportResult> ImportStaged(const std::filesystem::path& staged, const std::string& actor,
                                      const ImportProgressFn& progress);

  KmsContext* context_;
  Catalog* catalog_;
  AuditLog* audit_;
  std::filesystem::path staging_dir_;
  uint64_t next_import_order_ = 1;
};

}  // namespace keyline::kms
