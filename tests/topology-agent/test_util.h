// Shared helpers for the topology-agent tests: inventories built from plain values.
#pragma once

#include <cstdio>
#include <string>

#include "hyperaccel/xrt/model.h"

namespace hyperaccel::agent::testutil {

// A node with `n` U55C cards; serials "<prefix>C<i>"; when `ring`, up links i:1 -> i+1:0 (and
// the last back to the first).
inline hw::Inventory MakeInventory(const std::string& node, int n, bool ring = true,
                                   const std::string& prefix = "") {
  hw::Inventory inv;
  inv.node_name = node;
  inv.facts.xrt_available = true;
  inv.facts.xrt_version = "2.13.0";
  std::string p = prefix.empty() ? "XFL1" + node + "C" : prefix;
  for (int i = 0; i < n; ++i) {
    hw::Card c;
    char id[32];
    std::snprintf(id, sizeof(id), "0000:%02x:00.1", 0x3b + i);
    c.id = id;
    c.serial = p + std::to_string(i);
    c.shell = "xilinx_u55c_gen3x16_xdma_base_3";
    c.product = "ALVEO-U55C";
    c.numa_node = i < n / 2 ? 0 : 1;
    inv.cards.push_back(c);
  }
  if (ring && n >= 2) {
    for (int i = 0; i < n; ++i) {
      hw::Link l;
      l.a = {"", p + std::to_string(i), 1};
      l.b = {"", p + std::to_string((i + 1) % n), 0};
      l.state = hw::LinkState::kUp;
      l.source = "cabling";
      inv.links.push_back(l);
    }
  }
  return inv;
}

}  // namespace hyperaccel::agent::testutil
