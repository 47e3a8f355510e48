// Linked into every test binary: gives the tests the build's paths as environment defaults
// (an explicit environment still wins), so a test binary run by hand behaves like under ctest.
#include <cstdlib>

namespace {
struct TestEnvironmentDefaults {
  TestEnvironmentDefaults() {
    // NOLINTBEGIN(concurrency-mt-unsafe): runs before main, single-threaded.
    setenv("HYPERACCEL_SHARED_DIR", HYPERACCEL_TEST_SHARED_DIR, 0);
    setenv("HYPERACCEL_SOURCE_DIR", HYPERACCEL_TEST_SOURCE_DIR_PATH, 0);
    setenv("HYPERACCEL_BIN_DIR", HYPERACCEL_TEST_BIN_DIR, 0);
    // NOLINTEND(concurrency-mt-unsafe)
  }
};
const TestEnvironmentDefaults kDefaults;
}  // namespace
