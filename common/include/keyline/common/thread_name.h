// Names the calling thread, so `top -H`, perf and gdb show which part of a service is busy.
#pragma once

#include <string_view>

namespace keyline {

// Linux keeps 15 characters; longer names are cut.
void NameThisThread(std::string_view name);

}  // namespace keyline
