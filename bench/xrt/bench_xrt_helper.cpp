// What one run of the XRT probe helper (hyperaccel-xrt-probe) costs, per request: wall time from
// spawn to reaped, CPU time (user + system) and peak RSS of the child, as RunHelper measures them
// (wait4). Under XRT software emulation (--emulate=N devices, default 8) unless --hardware; then the
// machine's real XRT is asked (cards by BDF with --bdf=...).
//
//   bench_xrt_helper [--runs=N] [--emulate=N] [--helper=PATH] [--hardware] [--bdf=B,...]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "helper_process.h"
#include "hyperaccel/xrt/xrt_probe.h"

namespace {

using hyperaccel::hw::HelperLimits;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(std::lround(p * static_cast<double>(v.size() - 1)));
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 20;
  int emulate = 8;
  bool hardware = false;
  std::string helper;
  std::vector<std::string> bdfs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
    if (a.rfind("--runs=", 0) == 0) {
      runs = std::max(1, static_cast<int>(std::strtol(a.c_str() + 7, nullptr, 10)));
    } else if (a.rfind("--emulate=", 0) == 0) {
      emulate = std::max(1, static_cast<int>(std::strtol(a.c_str() + 10, nullptr, 10)));
    } else if (a.rfind("--helper=", 0) == 0) {
      helper = a.substr(9);
    } else if (a == "--hardware") {
      hardware = true;
    } else if (a.rfind("--bdf=", 0) == 0) {
      std::string list = a.substr(6);
      for (size_t at = 0; at <= list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        if (comma > at) bdfs.push_back(list.substr(at, comma - at));
        at = comma + 1;
      }
    } else {
      std::fprintf(
          stderr,
          "usage: bench_xrt_helper [--runs=N] [--emulate=N] [--helper=PATH] [--hardware] [--bdf=B,...]\n");
      return 2;
    }
  }
  if (helper.empty()) {
    auto found = hyperaccel::hw::FindXrtHelper();
    if (!found.ok()) {
      std::fprintf(stderr, "%s\n", found.status().message().c_str());
      return 1;
    }
    helper = *found;
  }
  auto env = hyperaccel::hw::PrepareXrtEnvironment(hardware ? 0 : emulate);
  if (!env.ok()) {
    std::fprintf(stderr, "%s\n", env.status().ToString().c_str());
    return 1;
  }
  std::vector<std::vector<std::string>> requests = {{"lib-dir"}, {"facts"}, {"opencl"}};
  if (!hardware) requests.push_back({"emulated"});
  if (!bdfs.empty()) {
    requests.push_back({"cards"});
    requests.back().insert(requests.back().end(), bdfs.begin(), bdfs.end());
  }
  std::printf(
      "hyperaccel-xrt-probe, %d runs per request, %s; helper %s\n\n", runs,
      hardware ? "hardware XRT" : ("XRT software emulation, " + std::to_string(emulate) + " devices").c_str(),
      helper.c_str());
  std::printf("| request | wall p50 ms | wall max ms | CPU p50 ms | peak RSS MiB | answer bytes |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const auto& request : requests) {
    std::vector<double> wall;
    std::vector<double> cpu;
    long rss = 0;  // NOLINT(google-runtime-int): rusage's type
    size_t bytes = 0;
    std::vector<std::string> argv_run{helper};
    argv_run.insert(argv_run.end(), request.begin(), request.end());
    for (int r = 0; r < runs; ++r) {
      auto out = hyperaccel::hw::RunHelper(argv_run, HelperLimits{});
      if (!out.ok() || out->exit_code != 0) {
        std::fprintf(
            stderr, "%s: %s\n", request.front().c_str(),
            out.ok() ? hyperaccel::hw::DescribeHelperEnd(*out).c_str() : out.status().ToString().c_str());
        return 1;
      }
      wall.push_back(static_cast<double>(out->wall.count()) / 1000.0);
      cpu.push_back(static_cast<double>(out->cpu.count()) / 1000.0);
      rss = std::max(rss, out->max_rss_kib);
      bytes = out->out.size();
    }
    std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %zu |\n", request.front().c_str(), Percentile(wall, 0.5),
                Percentile(wall, 1.0), Percentile(cpu, 0.5), static_cast<double>(rss) / 1024.0, bytes);
  }
  return 0;
}
