// One sysfs scan of a fake tree with 8 and 64 U55C cards (page cache warm, as on a host that
// scans periodically).
#include <benchmark/benchmark.h>

#include "fake_sysfs.h"
#include "hyperaccel/xrt/health.h"
#include "hyperaccel/xrt/sysfs_scanner.h"

namespace {

void BM_ScanSysfs(benchmark::State& state) {
  hyperaccel::testing::FakeSysfs fs;
  fs.SetDriverVersion("2.13.466");
  const int n = static_cast<int>(state.range(0));
  fs.Generate(n);
  for (auto _ : state) {
    auto scan = hyperaccel::hw::ScanSysfs(fs.root());
    if (scan.cards.size() != static_cast<size_t>(n) || !scan.warnings.empty()) {
      state.SkipWithError("unexpected scan result");
      break;
    }
    benchmark::DoNotOptimize(scan);
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_ScanSysfs)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond);

// Scan plus the health tracker, as the agent runs it each period.
void BM_ScanAndTrack(benchmark::State& state) {
  hyperaccel::testing::FakeSysfs fs;
  const int n = static_cast<int>(state.range(0));
  fs.Generate(n);
  hyperaccel::hw::HealthTracker tracker;
  for (auto _ : state) {
    auto cards = tracker.Update(hyperaccel::hw::ScanSysfs(fs.root()).cards);
    benchmark::DoNotOptimize(cards);
  }
}
BENCHMARK(BM_ScanAndTrack)->Arg(8)->Arg(64)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
