// The heuristic's gap to exhaustive search on 16..24 cards, where exhaustive search is still
// feasible. For each card count: random topologies and busy sets, k from 1 to n/2, one in five
// requests with a must-include card. Prints, per n: how often the heuristic (Method::kHeuristic)
// and Choose() (Method::kAuto: budgeted exhaustive search, heuristic fallback) reach the exact
// objective value, and the worst gap: the highest objective level where they fall short.
//
// Usage: placement_gap [samples-per-topology-and-n] (default 60)
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "random_graphs.h"

namespace hyperaccel::placement::bench {
namespace {

// The first objective level where `got` is worse than `best`, with the shortfall; level 0 when
// equal. Levels: 1 parts, 2 walk, 3 NUMA, 4 switches, 5 largest free set, 6 free sets, 7 ring.
struct Gap {
  int level = 0;
  int amount = 0;
};

Gap GapOf(const Score& best, const Score& got) {
  const int diffs[] = {got.components - best.components,
                       static_cast<int>(best.ordered) - static_cast<int>(got.ordered),
                       got.numa_nodes - best.numa_nodes,
                       got.pcie_switches - best.pcie_switches,
                       best.largest_free_after - got.largest_free_after,
                       got.free_components_after - best.free_components_after,
                       static_cast<int>(best.cycle) - static_cast<int>(got.cycle)};
  for (int i = 0; i < 7; ++i) {
    if (diffs[i] != 0) return {i + 1, diffs[i]};
  }
  return {};
}

const char* LevelName(int level) {
  static const char* const kNames[] = {"none",
                                       "components",
                                       "ordered",
                                       "numa_nodes",
                                       "pcie_switches",
                                       "largest_free_after",
                                       "free_components_after",
                                       "cycle"};
  return kNames[level];
}

struct Tally {
  int cases = 0;
  int equal = 0;
  Gap worst;
  void Add(const Gap& g) {
    ++cases;
    if (g.level == 0) {
      ++equal;
    } else if (worst.level == 0 || g.level < worst.level ||
               (g.level == worst.level && g.amount > worst.amount)) {
      worst = g;
    }
  }
  std::string Worst() const {
    if (worst.level == 0) return "-";
    return std::string(LevelName(worst.level)) + " by " + std::to_string(worst.amount);
  }
};

int Run(int samples) {
  std::mt19937 rng(424242);
  std::printf("%3s %6s  %-10s %-32s  %-10s %-32s\n", "n", "cases", "heur==opt", "heuristic worst gap",
              "auto==opt", "Choose() worst gap");
  for (int n = 16; n <= 24; n += 2) {
    Tally heuristic;
    Tally automatic;
    for (Topology t : {Topology::kRing, Topology::kRingsOfEight, Topology::kChain, Topology::kBrokenRing,
                       Topology::kMesh}) {
      for (int s = 0; s < samples; ++s) {
        const CardGraph g = MakeGraph(t, n, rng);
        const int k = std::uniform_int_distribution<int>(1, n / 2)(rng);
        const double busy = std::uniform_real_distribution<double>(0.0, 0.5)(rng);
        const Request r = MakeRequest(g, k, busy, 0.2, rng);
        const Result<Choice> exact = ChooseWith(g, r, Method::kExact);
        const Result<Choice> heur = ChooseWith(g, r, Method::kHeuristic);
        const Result<Choice> autom = ChooseWith(g, r, Method::kAuto);
        if (!exact.ok() || !heur.ok() || !autom.ok()) {
          std::fprintf(stderr, "unexpected error: %s\n", exact.status().ToString().c_str());
          return 1;
        }
        heuristic.Add(GapOf(exact->score, heur->score));
        automatic.Add(GapOf(exact->score, autom->score));
      }
    }
    std::printf("%3d %6d  %8.1f%%  %-32s  %8.1f%%  %-32s\n", n, heuristic.cases,
                100.0 * heuristic.equal / heuristic.cases, heuristic.Worst().c_str(),
                100.0 * automatic.equal / automatic.cases, automatic.Worst().c_str());
  }
  return 0;
}

}  // namespace
}  // namespace hyperaccel::placement::bench

int main(int argc, char** argv) {
  return hyperaccel::placement::bench::Run(argc > 1 ? std::atoi(argv[1]) : 60);
}
