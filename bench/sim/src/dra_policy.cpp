#include "hyperaccel/sim/dra_policy.h"

#include <algorithm>
#include <bit>

namespace hyperaccel::sim {

DraAllocator::DraAllocator(const placement::CardGraph& graph, placement::ArcAlignment alignment,
                           std::vector<int> arc_sizes)
    : arcs_(placement::LinkedArcs(graph, arc_sizes, alignment)),
      arc_sizes_(std::move(arc_sizes)),
      healthy_(graph.HealthyMask()) {}

placement::Mask DraAllocator::Allocate(placement::Mask free, int k) const {
  free &= healthy_;
  if (k <= 0 || std::popcount(free) < k) return 0;
  if (std::find(arc_sizes_.begin(), arc_sizes_.end(), k) != arc_sizes_.end()) {
    auto arc = placement::FirstFitArc(arcs_, free, k);
    return arc ? arc->mask : 0;
  }
  // k card devices: the first k free ones in publication order (card index).
  placement::Mask out = 0;
  for (int i = 0; i < k; ++i) {
    const placement::Mask low = free & (~free + 1);
    out |= low;
    free &= ~low;
  }
  return out;
}

}  // namespace hyperaccel::sim
