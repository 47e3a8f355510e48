// Hand-made inventories for the DRA driver tests: rings, chains, meshes, several domains.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "hyperaccel/xrt/model.h"

namespace hyperaccel::dra::testing {

inline hw::Card MakeCard(int i) {
  hw::Card c;
  char id[32];
  std::snprintf(id, sizeof id, "0000:%02x:00.1", 0x10 + i);
  c.id = id;
  c.serial = "XFL1SER" + std::to_string(100 + i);
  c.shell = "xilinx_u55c_gen3x16_xdma_base_3";
  c.product = "ALVEO-U55C";
  c.numa_node = i % 2;
  c.pcie_path = {"pci0000:" + std::to_string(10 + i / 4), std::string(id).substr(0, 10) + "00.0"};
  c.ports.resize(2);
  c.ports[1].index = 1;
  return c;
}

// `n` cards and the given links (card index pairs); each pair uses port 1 of the first card and
// port 0 of the second, so a card has at most two links (the U55C has two QSFP ports) unless
// `any_port` is set (meshes: ports are then numbered by link count, as a test fixture).
inline hw::Inventory Inventory(int n, const std::vector<std::pair<int, int>>& links) {
  hw::Inventory inv;
  inv.node_name = "node-1";
  for (int i = 0; i < n; ++i) inv.cards.push_back(MakeCard(i));
  std::vector<int> used(static_cast<size_t>(n), 0);
  for (auto [a, b] : links) {
    hw::Link l;
    l.a = {"", inv.cards[static_cast<size_t>(a)].serial, used[static_cast<size_t>(a)]++};
    l.b = {"", inv.cards[static_cast<size_t>(b)].serial, used[static_cast<size_t>(b)]++};
    l.state = hw::LinkState::kUp;
    l.source = "cabling";
    inv.links.push_back(l);
  }
  return inv;
}

// Cards [first, first+n) linked in a chain, closed into a ring when `ring`.
inline void AddRun(std::vector<std::pair<int, int>>& links, int first, int n, bool ring) {
  for (int i = 0; i + 1 < n; ++i) links.emplace_back(first + i, first + i + 1);
  if (ring && n >= 3) links.emplace_back(first + n - 1, first);
}

inline hw::Inventory Ring(int n) {
  std::vector<std::pair<int, int>> links;
  AddRun(links, 0, n, true);
  return Inventory(n, links);
}

inline hw::Inventory Chain(int n) {
  std::vector<std::pair<int, int>> links;
  AddRun(links, 0, n, false);
  return Inventory(n, links);
}

// A ring plus chords i <-> i + n/2 (every card has three links: a mesh).
inline hw::Inventory Mesh(int n) {
  std::vector<std::pair<int, int>> links;
  AddRun(links, 0, n, true);
  for (int i = 0; i < n / 2; ++i) links.emplace_back(i, i + n / 2);
  return Inventory(n, links);
}

// Two rings of `each` cards on one node.
inline hw::Inventory TwoRings(int each) {
  std::vector<std::pair<int, int>> links;
  AddRun(links, 0, each, true);
  AddRun(links, each, each, true);
  return Inventory(2 * each, links);
}

}  // namespace hyperaccel::dra::testing
