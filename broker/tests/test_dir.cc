#include "test_dir.h"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace keyline::broker::testing {

TestDir::TestDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "keyline-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TestDir::~TestDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace keyline::broker::testing
