// Hand-made inventories for the device-plugin tests: N U55C cards cabled into a ring.
#pragma once

#include <cstdio>
#include <string>

#include "hyperaccel/xrt/model.h"

namespace hyperaccel::device_plugin::testing {

inline std::string CardId(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0000:%02x:00.1", 0x10 + i);
  return buf;
}

// `n` cards, card i linked to card i+1 (and the last to the first when `ring`). Cards in the first
// half sit on NUMA node 0, the rest on node 1; card `no_numa` (when >= 0) has no NUMA node.
inline hw::Inventory RingInventory(int n, bool ring = true, int no_numa = -1) {
  hw::Inventory inv;
  inv.node_name = "node-a";
  for (int i = 0; i < n; ++i) {
    hw::Card c;
    c.id = CardId(i);
    c.serial = "XFL1SER" + std::to_string(100 + i);
    c.shell = "xilinx_u55c_gen3x16_xdma_base_3";
    c.product = "ALVEO-U55C";
    c.vendor_id = 0x10ee;
    c.device_id = 0x505d;
    if (i != no_numa) c.numa_node = i < n / 2 ? 0 : 1;
    c.render_node = "/dev/dri/renderD" + std::to_string(128 + i);
    c.mgmt_id = c.id.substr(0, c.id.size() - 1) + "0";
    c.mgmt_node = "/dev/xclmgmt" + std::to_string(4096 + i);
    c.ports.resize(2);
    c.ports[1].index = 1;
    inv.cards.push_back(c);
  }
  for (int i = 0; i < n; ++i) {
    if (i + 1 == n && (!ring || n < 3)) break;
    hw::Link l;
    l.a = {"", inv.cards[static_cast<size_t>(i)].serial, 1};
    l.b = {"", inv.cards[static_cast<size_t>((i + 1) % n)].serial, 0};
    l.state = hw::LinkState::kUp;
    l.source = "cabling";
    inv.links.push_back(l);
  }
  return inv;
}

}  // namespace hyperaccel::device_plugin::testing
