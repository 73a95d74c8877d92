#include "keyline/common/thread_name.h"

#include <pthread.h>

#include <string>

namespace keyline {

void NameThisThread(std::string_view name) {
  std::string cut(name.substr(0, 15));
  // Only fails for a name over 15 characters; a nameless thread is not worth an error.
  (void)pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace keyline
