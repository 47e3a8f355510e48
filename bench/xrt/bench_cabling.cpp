// Parsing a cabling file of 1 000 / 10 000 / 100 000 lines (bench/../tests/support/cabling_text.h:
// nodes of 8 cards, 32-card rings; the documented flow style, two lines per link, and the block
// style, eight lines per link): ParseCabling (events, links kept) against the tree-based reader it
// replaced (tests/xrt/cabling_tree_reader.h). Time per parse from Google Benchmark; counters:
//   links     links in the file
//   MiB       size of the text
//   rss_MiB   peak resident memory the parse added, measured once in a forked child (freed heap
//             returned first, the high-water mark reset, text already resident)
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <utility>

#include "cabling_text.h"
#include "cabling_tree_reader.h"
#include "hyperaccel/xrt/cabling.h"

namespace {

using hyperaccel::testing::CablingStyle;

const std::string& Text(size_t lines, CablingStyle style) {
  static std::map<std::pair<size_t, CablingStyle>, std::string> cache;
  auto [it, fresh] = cache.try_emplace({lines, style});
  if (fresh) it->second = hyperaccel::testing::GeneratedCablingOfLines(lines, style);
  return it->second;
}

hyperaccel::hw::CablingOptions Options() {
  hyperaccel::hw::CablingOptions options;
  options.max_bytes = 64u << 20;  // the block style of the tree reader's era is not the question here
  return options;
}

// kB of a /proc/self/status field ("VmRSS", "VmHWM"), -1 when unreadable.
long StatusKiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
      return std::strtol(line.c_str() + n + 1, nullptr, 10);
  }
  return -1;
}

// Peak RSS added by one call of `parse`, in KiB, measured in a child process; -1 on failure.
template <typename Parse>
long RssDeltaKiB(Parse parse) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(fds[0]);
    malloc_trim(0);
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current RSS
    const long before = StatusKiB("VmRSS");
    const bool ok = parse();
    const long peak = StatusKiB("VmHWM");
    const long delta = ok && before >= 0 && peak >= 0 ? peak - before : -1;
    if (write(fds[1], &delta, sizeof delta) != static_cast<ssize_t>(sizeof delta)) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  long delta = -1;
  if (read(fds[0], &delta, sizeof delta) != static_cast<ssize_t>(sizeof delta)) delta = -1;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return delta;
}

template <bool kTree>
void BM_Parse(benchmark::State& state) {
  const size_t lines = static_cast<size_t>(state.range(0));
  const CablingStyle style = state.range(1) == 0 ? CablingStyle::kFlow : CablingStyle::kBlock;
  const std::string& text = Text(lines, style);
  auto parse = [&] {
    return kTree ? hyperaccel::hw::testing::ParseCablingTree(text, "bench.yaml", Options())
                 : hyperaccel::hw::ParseCabling(text, "bench.yaml", Options());
  };
  auto first = parse();
  if (!first.ok()) {
    state.SkipWithError(first.status().ToString().c_str());
    return;
  }
  const size_t links = first->links.size();
  first = hyperaccel::hw::Cabling{};
  const long rss = RssDeltaKiB([&] { return parse().ok(); });
  for (auto _ : state) {
    auto cabling = parse();
    benchmark::DoNotOptimize(cabling);
  }
  state.SetLabel(style == CablingStyle::kFlow ? "flow" : "block");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
  state.counters["links"] = static_cast<double>(links);
  state.counters["MiB"] = static_cast<double>(text.size()) / (1 << 20);
  state.counters["rss_MiB"] = rss < 0 ? -1.0 : static_cast<double>(rss) / 1024;
}

void Args(benchmark::internal::Benchmark* b) {
  for (int64_t style : {0, 1}) {
    for (int64_t lines : {1000, 10000, 100000}) b->Args({lines, style});
  }
  b->ArgNames({"lines", "block"})->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
}
BENCHMARK(BM_Parse<false>)->Name("ParseCabling")->Apply(Args);
BENCHMARK(BM_Parse<true>)->Name("ParseCablingTree")->Apply(Args);

}  // namespace

BENCHMARK_MAIN();
