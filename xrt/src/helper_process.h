// Runs a short-lived helper executable and collects what it writes, with a deadline. Used by the
// XRT probe (xrt_probe.cpp) to run hyperaccel-xrt-probe, so that XRT never runs inside a daemon.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "hyperaccel/common/status.h"

namespace hyperaccel::hw {

struct HelperLimits {
  std::chrono::milliseconds timeout{5000};  // from spawn to exit; the child is killed after it
  size_t max_stdout = size_t{4} << 20;      // more than this is an error (child killed)
  size_t max_stderr_kept = 8192;            // only the last bytes of stderr are kept
};

// How a finished helper ended.
struct HelperOutput {
  int exit_code = -1;                 // when it exited; -1 when it was killed by a signal
  int term_signal = 0;                // the signal that ended it, 0 when it exited
  std::string out;                    // everything written on stdout
  std::string err_tail;               // the last HelperLimits::max_stderr_kept bytes of stderr
  std::chrono::microseconds wall{0};  // spawn to reaped
  std::chrono::microseconds cpu{0};   // user + system time of the child (and children it waited for)
  long max_rss_kib = 0;               // the child's peak resident set  // NOLINT(google-runtime-int)
};

// Starts `argv[0]` (an absolute path; argv[1..] its arguments) with posix_spawn, no shell, stdin
// from /dev/null, no other descriptor of the caller's beyond stdout and stderr, the caller's environment,
// default signal dispositions and an empty signal mask, in a process group of its own. Reads stdout and
// stderr through pipes until both close, then reaps it. Never leaves a zombie: on timeout or oversized output
// it kills the child's process group and reaps it before returning.
//
// Errors (Status): the child could not be started (with errno's text), DEADLINE_EXCEEDED when it
// did not finish within `limits.timeout`, RESOURCE_EXHAUSTED when stdout exceeded the limit.
// A child that ran and exited non-zero or died of a signal is not an error here: the caller reads
// HelperOutput. Thread-safe (pipes are close-on-exec, so concurrent spawns do not leak them).
Result<HelperOutput> RunHelper(const std::vector<std::string>& argv, const HelperLimits& limits);

// "exited with status 3" / "killed by signal 9 (Killed)", followed by the last line of stderr
// when there is one: for error messages.
std::string DescribeHelperEnd(const HelperOutput& out);

}  // namespace hyperaccel::hw
