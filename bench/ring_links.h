// Shared by the benchmarks that build synthetic inventories: cables card i to card i+1 (and the
// last back to the first), every link up, as HyperAccel servers ship.
#pragma once

#include <cstddef>

#include "hyperaccel/xrt/model.h"

namespace hyperaccel::bench {

inline void LinkCardsInRing(hw::Inventory& inv) {
  const size_t n = inv.cards.size();
  for (size_t i = 0; i < n; ++i) {
    hw::Link l;
    l.a = {"", inv.cards[i].serial, 1};
    l.b = {"", inv.cards[(i + 1) % n].serial, 0};
    l.state = hw::LinkState::kUp;
    inv.links.push_back(l);
  }
}

}  // namespace hyperaccel::bench
