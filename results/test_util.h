// Helpers shared by the results tests: sample run folders and temp dirs.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "results/run_model.h"

namespace krepro::results::testing {

inline std::string testdata(const std::string& name) {
  return std::string(KREPRO_RESULTS_TESTDATA) + "/" + name;
}

// A temp dir removed on destruction (also when the test fails).
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/krepro-results-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Copies a sample run folder into DIR/NAME and returns its path.
inline std::string copy_sample(const std::string& sample, const std::string& dir,
                               const std::string& name = "") {
  std::string dst = dir + "/" + (name.empty() ? sample : name);
  std::filesystem::copy(testdata(sample), dst, std::filesystem::copy_options::recursive);
  return dst;
}

inline RunData sample(const std::string& name) {
  auto r = load_run(testdata(name));
  EXPECT_TRUE(r.has_value()) << name;
  return r ? std::move(*r) : RunData{};
}

}  // namespace krepro::results::testing
