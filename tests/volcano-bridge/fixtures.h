// Access to the shared Volcano fixtures (directory from HYPERACCEL_SHARED_DIR, set by ctest).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace hyperaccel::bridge::testing {

inline std::optional<std::filesystem::path> FixtureDir() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read only; ctest sets it before the process starts
  const char* shared = std::getenv("HYPERACCEL_SHARED_DIR");
  if (shared == nullptr || *shared == '\0') return std::nullopt;
  std::filesystem::path dir = std::filesystem::path(shared) / "fixtures" / "volcano";
  if (!std::filesystem::is_directory(dir)) return std::nullopt;
  return dir;
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace hyperaccel::bridge::testing

// Reads fixture `name` into `var`, or skips the test with a message saying where it looked.
#define BRIDGE_FIXTURE(var, name)                                                                \
  std::string var;                                                                               \
  do {                                                                                           \
    auto dir_ = ::hyperaccel::bridge::testing::FixtureDir();                                     \
    if (!dir_)                                                                                   \
      GTEST_SKIP() << "Volcano fixtures not found: set HYPERACCEL_SHARED_DIR to the shared/ "    \
                      "folder (ctest does); looked for $HYPERACCEL_SHARED_DIR/fixtures/volcano"; \
    (var) = ::hyperaccel::bridge::testing::ReadFile(*dir_ / (name));                             \
    ASSERT_FALSE((var).empty()) << "fixture " << (name) << " missing or empty in " << *dir_;     \
  } while (0)
