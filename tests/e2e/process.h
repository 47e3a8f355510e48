// Runs a program of ours and captures its output (tests only).
#pragma once

#include <string>
#include <vector>

namespace hyperaccel::testing {

struct ProcessResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `binary` (a name under $HYPERACCEL_BIN_DIR, or an absolute path) with `args` and waits.
ProcessResult RunBinary(const std::string& binary, const std::vector<std::string>& args);

// Directory of the built binaries ($HYPERACCEL_BIN_DIR, set by ctest).
std::string BinDir();

}  // namespace hyperaccel::testing
