// Times as status pages print them.
#pragma once

#include <cstdint>
#include <string>

namespace keyline {

// "2026-12-02T08:00:00Z" (UTC, whole seconds) for microseconds since the Unix epoch; "never"
// for 0, which status records use for "not yet".
std::string UtcTimeText(int64_t us_since_epoch);

}  // namespace keyline
