// Choose() latency for n = 8, 16, 32, 64 cards and k = 1..n/2 on random busy sets. Every call is
// timed on its own with the thread's CPU clock (the build machines are shared: wall time there
// includes other jobs' time slices); p50/p99 (µs) are reported as counters and, at the end, as
// one table per topology and card count (all k of one n pooled).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "random_graphs.h"

namespace hyperaccel::placement::bench {
namespace {

constexpr int kCases = 256;  // distinct (graph, request) pairs per benchmark

struct Pool {
  std::vector<double> micros;
};
std::map<std::pair<int, int>, Pool>& Samples() {  // (topology, n) -> every timed call
  static std::map<std::pair<int, int>, Pool> samples;
  return samples;
}

double ThreadMicros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t at = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[at];
}

void BM_Choose(benchmark::State& state) {
  const auto topology = static_cast<Topology>(state.range(0));
  const int n = static_cast<int>(state.range(1));
  const int k = static_cast<int>(state.range(2));
  std::mt19937 rng(static_cast<unsigned>(n * 1000 + k));
  std::vector<std::pair<CardGraph, Request>> cases;
  for (int i = 0; i < kCases; ++i) {
    CardGraph g = MakeGraph(topology, n, rng);
    const double busy = std::uniform_real_distribution<double>(0.0, 0.5)(rng);
    Request r = MakeRequest(g, k, busy, 0.2, rng);
    cases.emplace_back(std::move(g), r);
  }
  std::vector<double> micros;
  size_t next = 0;
  for (auto _ : state) {
    const auto& [graph, request] = cases[next];
    next = (next + 1) % cases.size();
    const double start = ThreadMicros();
    Result<Choice> choice = Choose(graph, request);
    const double stop = ThreadMicros();
    benchmark::DoNotOptimize(choice);
    micros.push_back(stop - start);
  }
  state.counters["p50_us"] = Percentile(micros, 0.50);
  state.counters["p99_us"] = Percentile(micros, 0.99);
  state.counters["max_us"] = Percentile(micros, 1.0);
  Pool& pool = Samples()[{static_cast<int>(topology), n}];
  pool.micros.insert(pool.micros.end(), micros.begin(), micros.end());
}

void Arguments(benchmark::internal::Benchmark* b) {
  for (Topology t : {Topology::kRing, Topology::kRingsOfEight, Topology::kBrokenRing, Topology::kMesh}) {
    for (int n : {8, 16, 32, 64}) {
      for (int k = 1; k <= n / 2; k += (n <= 16 ? 1 : n / 16)) b->Args({static_cast<int>(t), n, k});
    }
  }
  b->ArgNames({"topology", "n", "k"});
}
BENCHMARK(BM_Choose)->Apply(Arguments)->MinTime(0.05);

void PrintTable() {
  std::printf("\n%-12s %4s %10s %10s %10s %10s\n", "topology", "n", "calls", "p50_us", "p99_us", "max_us");
  for (const auto& [key, pool] : Samples()) {
    std::printf("%-12s %4d %10zu %10.1f %10.1f %10.1f\n", TopologyName(static_cast<Topology>(key.first)),
                key.second, pool.micros.size(), Percentile(pool.micros, 0.5), Percentile(pool.micros, 0.99),
                Percentile(pool.micros, 1.0));
  }
}

}  // namespace
}  // namespace hyperaccel::placement::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  hyperaccel::placement::bench::PrintTable();
  return 0;
}
