// The simulator's two state files (SHE key stores, certificate-slot identities) are kept the
// same way: appended to, each change synced before the ECU answers, and rewritten compacted at
// start. This is that, once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

#include "keyline/common/status.h"

namespace keyline::ecu_sim {

class AppendOnlyFile {
 public:
  // Replaces `path` with `contents` (temp file + fsync + rename + fsync of the directory) and
  // opens it for appending.
  [[nodiscard]] static StatusOr<AppendOnlyFile> Rewrite(const std::filesystem::path& path,
                                                        std::span<const uint8_t> contents);
  AppendOnlyFile(AppendOnlyFile&& other) noexcept;
  AppendOnlyFile& operator=(AppendOnlyFile&& other) noexcept;
  AppendOnlyFile(const AppendOnlyFile&) = delete;
  AppendOnlyFile& operator=(const AppendOnlyFile&) = delete;
  ~AppendOnlyFile();

  // Durable when it returns OK. A failed append (a full disk) is cut off again, so the next
  // one does not land behind half a record.
  [[nodiscard]] Status Append(std::span<const uint8_t> bytes);

 private:
  AppendOnlyFile(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace keyline::ecu_sim
