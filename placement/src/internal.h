// Internal pieces shared by the placement sources: bit helpers, the per-call search context and the
// packed objective key. Not part of the public API.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <vector>

#include "hyperaccel/placement/placement.h"

namespace hyperaccel::placement::internal {

inline int Count(Mask m) { return std::popcount(m); }
inline int Low(Mask m) { return std::countr_zero(m); }
inline Mask Bit(int i) { return Mask{1} << i; }
// Bits strictly above index i.
inline Mask Above(int i) { return i >= 63 ? Mask{0} : ~Mask{0} << (i + 1); }

template <typename F>
inline void ForEachBit(Mask m, F&& f) {
  while (m != 0) {
    f(Low(m));
    m &= m - 1;
  }
}

// True when set `a` wins the index tie-break against `b`: the lowest index where they differ is
// in `a` (the lexicographically smaller ascending index list).
inline bool TieBreakLess(Mask a, Mask b) {
  const Mask diff = a ^ b;
  return diff != 0 && (a & diff & (~diff + 1)) != 0;
}

struct Walk {
  bool path = false;
  bool cycle = false;
  bool undecided = false;  // the bounded search gave up; path/cycle are lower bounds
};
// How hard FindWalk tries on meshes (cards with more than two neighbours in the set).
struct WalkEffort {
  long steps = 4096;      // depth-first search steps (cycle search gets half as many)
  bool subset_dp = true;  // then dynamic programming over subsets when the set has <= 16 cards
};
// Everything the objective needs about one graph and one availability mask, precomputed once.
struct Context {
  int n = 0;
  Mask available = 0;                 // request.available & healthy
  std::array<Mask, kMaxCards> adj{};  // graph adjacency (all cards)
  std::vector<Mask> numa_groups;      // one mask per distinct NUMA value (-1 included)
  std::vector<Mask> switch_groups;    // one mask per PCIe switch group >= 0
  Mask no_switch = 0;                 // cards with switch group -1 (each counts on its own)
  WalkEffort walk_effort;             // what the searches spend per Hamiltonian walk check
};

Context MakeContext(const CardGraph& graph, Mask available);

// The linked part of `set` that holds the lowest card of `set` (0 when `set` is empty); `near`,
// when given, receives every card linked to the part (inside or outside `set`).
inline Mask LowestPart(const std::array<Mask, kMaxCards>& adj, Mask set, Mask* near = nullptr) {
  Mask part = set & (~set + 1);
  Mask frontier = part;
  Mask around = 0;
  while (frontier != 0) {
    Mask next = 0;
    ForEachBit(frontier, [&](int v) { next |= adj[v]; });
    around |= next;
    next &= set & ~part;
    part |= next;
    frontier = next;
  }
  if (near != nullptr) *near = around;
  return part;
}

// Connected parts of `set` under the adjacency; `largest` receives the largest part's size.
int Components(const Context& ctx, Mask set, int* largest);

// Whether `set` (connected, non-empty) has a Hamiltonian path / cycle over its induced links.
// Exact when every card of `set` has at most two neighbours in it (rings and chains: trivial) or
// when `set` has at most kExactCards cards and `effort.subset_dp`. Otherwise a bounded search;
// when it gives up the answer is `undecided` with path/cycle as found so far.
Walk FindWalk(const std::array<Mask, kMaxCards>& adj, Mask set, WalkEffort effort = {});

// Packed lexicographic objective, larger is better. Layout (high to low): components (inverted),
// ordered, NUMA nodes (inverted), switch groups (inverted), largest free set, free sets (inverted),
// cycle.
using Key = uint64_t;
inline Key PackKey(int components, bool ordered, int numa, int switches, int largest_free,
                   int free_components, bool cycle) {
  auto inv = [](int v) { return static_cast<Key>(127 - v); };
  return inv(components) << 36 | static_cast<Key>(ordered) << 35 | inv(numa) << 28 | inv(switches) << 21 |
         static_cast<Key>(largest_free) << 14 | inv(free_components) << 7 | static_cast<Key>(cycle) << 6;
}
Key PackKey(const Score& s);

int NumaCount(const Context& ctx, Mask set);
int SwitchCount(const Context& ctx, Mask set);

// Full score of `set` (no explanation text), walks checked with `ctx.walk_effort`.
Score ScoreOf(const Context& ctx, Mask set);
// One line for Score::explanation.
std::string Explain(const Score& score, const std::vector<int>& order);

// Search entry points; the request is already validated, `ctx.available` healthy-only.
struct SearchResult {
  Mask cards = 0;
  bool exact = false;  // proven optimal
};
// Exhaustive search: every connected k-set containing `must`; when there is none, every k-set
// (branch and bound on the number of parts, seeded with the heuristic). `budget` < 0: no limit;
// otherwise, when the enumeration exceeds it, the better of what was seen and the heuristic's
// answer is returned with exact == false.
SearchResult SearchExact(const Context& ctx, Mask must, int k, long budget);
// Greedy growth from every available card, then swap-based local improvement.
SearchResult SearchHeuristic(const Context& ctx, Mask must, int k);

}  // namespace hyperaccel::placement::internal
