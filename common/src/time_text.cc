#include "keyline/common/time_text.h"

#include <ctime>

namespace keyline {

std::string UtcTimeText(int64_t us_since_epoch) {
  if (us_since_epoch == 0) return "never";
  std::time_t seconds = static_cast<std::time_t>(us_since_epoch / 1'000'000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace keyline
