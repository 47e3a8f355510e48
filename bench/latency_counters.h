// Shared by the Google Benchmark programs that time each iteration themselves: reports the p50,
// p99 and max of the per-iteration times as counters (p50_us, p99_us, max_us).
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace hyperaccel::bench {

// `us`: one time per iteration, in microseconds. Nothing is reported when it is empty.
inline void ReportLatency(benchmark::State& state, std::vector<double> us) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<size_t>(q * static_cast<double>(us.size())))];
  };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
  state.counters["max_us"] = us.back();
}

}  // namespace hyperaccel::bench
