// Runs a program of ours and captures its output (tests only).
#pragma once

#include <sys/types.h>

#include <chrono>
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

// A program of ours running in the background; stdout and stderr go to `log_path`.
struct Child {
  pid_t pid = -1;
  std::string log_path;
};

// Starts `binary` (as RunBinary) without waiting.
Child StartBinary(const std::string& binary, const std::vector<std::string>& args,
                  const std::string& log_path);

// Waits up to `timeout` for the child to end: its exit code (128 + signal when a signal ended
// it), or -1 after killing it with SIGKILL when it did not end in time.
int WaitForExit(Child& child, std::chrono::milliseconds timeout);

// The child's log so far.
std::string ReadLog(const Child& child);

// Directory of the built binaries ($HYPERACCEL_BIN_DIR, set by ctest).
std::string BinDir();

// Starts `path` with `args` in its own process group without waiting, stdout and stderr appended
// to `log_file` (created or truncated), inheriting no descriptor beyond 0-2 (so its /proc/PID/fd
// holds only its own). Returns the pid, or -1 when fork failed.
pid_t SpawnDaemon(const std::string& path, const std::vector<std::string>& args, const std::string& log_file);

// A TCP port on 127.0.0.1 that was free a moment ago (0 when none could be bound).
int FreeLoopbackPort();

}  // namespace hyperaccel::testing
