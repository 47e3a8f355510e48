// Random card graphs and requests shared by the placement benchmarks.
#pragma once

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "hyperaccel/placement/placement.h"

namespace hyperaccel::placement::bench {

enum class Topology { kRing, kRingsOfEight, kChain, kBrokenRing, kMesh };

inline const char* TopologyName(Topology t) {
  switch (t) {
    case Topology::kRing: return "ring";
    case Topology::kRingsOfEight: return "rings-of-8";
    case Topology::kChain: return "chain";
    case Topology::kBrokenRing: return "broken-ring";
    case Topology::kMesh: return "mesh";
  }
  return "?";
}

// n healthy cards; NUMA node = first or second half; one PCIe switch per group of four cards.
inline CardGraph MakeGraph(Topology t, int n, std::mt19937& rng) {
  CardGraph g;
  auto link = [&g](int a, int b) {
    if (a == b) return;
    g.adj[a] |= Mask{1} << b;
    g.adj[b] |= Mask{1} << a;
  };
  for (int i = 0; i < n; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "0000:%02x:00.1", i + 1);
    g.ids.emplace_back(id);
    g.serials.push_back("XFL" + std::to_string(1000 + i));
    g.numa.push_back(i < n / 2 ? 0 : 1);
    g.pcie_switch.push_back(i / 4);
    g.healthy.push_back(true);
    g.adj.push_back(0);
  }
  switch (t) {
    case Topology::kRing:
      for (int i = 0; i < n; ++i) link(i, (i + 1) % n);
      break;
    case Topology::kRingsOfEight:  // the last ring is shorter when n is not a multiple of 8
      for (int i = 0; i < n; ++i) {
        const int first = i / 8 * 8;
        link(i, first + (i - first + 1) % std::min(8, n - first));
      }
      break;
    case Topology::kChain:
      for (int i = 0; i + 1 < n; ++i) link(i, i + 1);
      break;
    case Topology::kBrokenRing:
      for (int i = 0; i < n; ++i) {
        if (std::bernoulli_distribution(0.85)(rng)) link(i, (i + 1) % n);
      }
      break;
    case Topology::kMesh:
      for (int i = 0; i < n; ++i) link(i, (i + 1) % n);
      for (int e = 0; e < n / 2; ++e) {
        link(std::uniform_int_distribution<int>(0, n - 1)(rng),
             std::uniform_int_distribution<int>(0, n - 1)(rng));
      }
      break;
  }
  return g;
}

// A request for k cards on a node where each card is busy with probability `busy` (redrawn until
// at least k cards are free). One must-include card with probability `must_share`.
inline Request MakeRequest(const CardGraph& g, int k, double busy, double must_share, std::mt19937& rng) {
  while (true) {
    Request r;
    r.size = k;
    std::vector<int> free_cards;
    for (int i = 0; i < g.size(); ++i) {
      if (!std::bernoulli_distribution(busy)(rng)) {
        r.available |= Mask{1} << i;
        free_cards.push_back(i);
      }
    }
    if (static_cast<int>(free_cards.size()) < k) continue;
    if (std::bernoulli_distribution(must_share)(rng)) {
      r.must_include =
          Mask{1} << free_cards[std::uniform_int_distribution<size_t>(0, free_cards.size() - 1)(rng)];
    }
    return r;
  }
}

}  // namespace hyperaccel::placement::bench
