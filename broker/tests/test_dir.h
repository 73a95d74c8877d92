// A temporary directory for one test, removed when the test ends.
#pragma once

#include <filesystem>

namespace keyline::broker::testing {

class TestDir {
 public:
  TestDir();
  ~TestDir();
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace keyline::broker::testing
