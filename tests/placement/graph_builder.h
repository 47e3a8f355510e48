// Small helpers to build card graphs by hand in the placement tests.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "hyperaccel/placement/placement.h"

namespace hyperaccel::placement::testing {

// n healthy cards named 0000:<10+i>:00.1, NUMA 0, no PCIe switch, no links.
inline CardGraph Cards(int n) {
  CardGraph g;
  for (int i = 0; i < n; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "0000:%02x:00.1", 0x10 + i);
    g.ids.emplace_back(id);
    g.serials.push_back("SN" + std::to_string(i));
    g.numa.push_back(0);
    g.pcie_switch.push_back(-1);
    g.healthy.push_back(true);
    g.adj.push_back(0);
  }
  return g;
}

inline void Link(CardGraph& g, int a, int b) {
  g.adj[a] |= Mask{1} << b;
  g.adj[b] |= Mask{1} << a;
}

// Cards first..first+len-1 linked as a chain, closed into a ring when `ring`.
inline void Chain(CardGraph& g, int first, int len, bool ring) {
  for (int i = 0; i + 1 < len; ++i) Link(g, first + i, first + i + 1);
  if (ring && len >= 3) Link(g, first + len - 1, first);
}

inline CardGraph Ring(int n) {
  CardGraph g = Cards(n);
  Chain(g, 0, n, true);
  return g;
}

inline Mask Bits(std::initializer_list<int> indices) {
  Mask m = 0;
  for (int i : indices) m |= Mask{1} << i;
  return m;
}

inline Mask AllBut(const CardGraph& g, std::initializer_list<int> busy) { return g.AllMask() & ~Bits(busy); }

}  // namespace hyperaccel::placement::testing
