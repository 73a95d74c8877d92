#include "kms_context.h"

#include <chrono>
#include <ctime>

#include <rocksdb/db.h>

namespace keyline::kms {

StatusOr<std::optional<std::string>> KmsContext::Get(std::string_view family,
                                                     std::string_view key) const {
  std::string value;
  rocksdb::Status s = database->db()->Get(rocksdb::ReadOptions(), Family(family),
                                          rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return UnavailableError("reading " + std::string(family) + ": " + s.ToString());
  return std::optional<std::string>(std::move(value));
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Rfc3339(int64_t us) {
  std::time_t seconds = static_cast<std::time_t>(us / 1000000);
  int64_t micros = us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    --seconds;
  }
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long>(micros));
  return text;
}

}  // namespace keyline::kms
