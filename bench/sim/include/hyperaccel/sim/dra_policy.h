// The `dra-aligned` and `dra-all` policies: what kube-scheduler's DRA allocator does with the
// devices hyperaccel-dra-driver publishes. The allocator has no device scoring: for a claim it
// takes the first device (in publication order) that matches and whose counters are free. A pod
// asking for k cards carries one claim for one arc of k cards when k is a published arc size, else
// a claim for k card devices. Node choice has no DRA-aware scoring either (kube-scheduler scores
// CPU/memory), so the node is picked at random among those where the claim can be allocated, and
// gangs are placed pod by pod without link-domain tiers.
#pragma once

#include <vector>

#include "hyperaccel/placement/placement.h"

namespace hyperaccel::sim {

class DraAllocator {
 public:
  DraAllocator(const placement::CardGraph& graph, placement::ArcAlignment alignment,
               std::vector<int> arc_sizes = {2, 4, 8});

  // The cards a claim for `k` cards gets out of `free`, or 0 when it cannot be allocated.
  placement::Mask Allocate(placement::Mask free, int k) const;

 private:
  std::vector<placement::Arc> arcs_;
  std::vector<int> arc_sizes_;
  placement::Mask healthy_ = 0;
};

}  // namespace hyperaccel::sim
