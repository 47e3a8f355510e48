// The dra-aligned / dra-all simulator policies: the allocator model (first free device in
// publication order) and the engine running it.
#include "hyperaccel/sim/dra_policy.h"

#include <gtest/gtest.h>

#include <sstream>

#include "../placement/graph_builder.h"
#include "hyperaccel/sim/cluster.h"
#include "hyperaccel/sim/engine.h"
#include "hyperaccel/sim/workload.h"

namespace hyperaccel::sim {
namespace {

using placement::Mask;

placement::CardGraph Ring8() {
  placement::CardGraph g = placement::testing::Cards(8);
  placement::testing::Chain(g, 0, 8, true);
  return g;
}

Mask Bits(std::initializer_list<int> cards) {
  Mask m = 0;
  for (int c : cards) m |= Mask{1} << c;
  return m;
}

TEST(DraAllocator, AlignedTakesTheFirstFreeAlignedArc) {
  const auto g = Ring8();
  DraAllocator dra(g, placement::ArcAlignment::kAligned);
  EXPECT_EQ(dra.Allocate(g.AllMask(), 4), Bits({0, 1, 2, 3}));
  EXPECT_EQ(dra.Allocate(g.AllMask() & ~Bits({1}), 4), Bits({4, 5, 6, 7}));
  EXPECT_EQ(dra.Allocate(g.AllMask() & ~Bits({1}), 2), Bits({2, 3}));
  EXPECT_EQ(dra.Allocate(g.AllMask() & ~Bits({1, 5}), 4), 0u);  // 4 free in a row exist, but not aligned
  EXPECT_EQ(dra.Allocate(g.AllMask() & ~Bits({0}), 3), Bits({1, 2, 3}));  // not an arc size: 3 card devices
  EXPECT_EQ(dra.Allocate(Bits({0}), 2), 0u);
}

TEST(DraAllocator, AllTakesEveryStartIncludingTheWrap) {
  const auto g = Ring8();
  DraAllocator dra(g, placement::ArcAlignment::kAll);
  EXPECT_EQ(dra.Allocate(g.AllMask() & ~Bits({1, 5}), 4), 0u);
  EXPECT_EQ(dra.Allocate(g.AllMask() & ~Bits({2, 5}), 4), Bits({6, 7, 0, 1}));
  EXPECT_EQ(dra.Allocate(g.AllMask() & ~Bits({0}), 2), Bits({1, 2}));
}

TEST(DraAllocator, UnhealthyCardsAreNeverGiven) {
  auto g = Ring8();
  g.healthy[0] = false;
  DraAllocator dra(g, placement::ArcAlignment::kAligned);
  EXPECT_EQ(dra.Allocate(g.AllMask(), 4), Bits({4, 5, 6, 7}));
  EXPECT_EQ(dra.Allocate(g.AllMask(), 1), Bits({1}));
}

// One 8-card ring: two 1-card pods take cards 0 and 1, the one on card 0 ends; a 4-card pod then
// gets an arc (linked) under both DRA policies, where the kubelet's first fit would split it.
TEST(DraPolicies, MultiCardPodsGetArcs) {
  ClusterConfig cfg;
  cfg.nodes = 1;
  cfg.nodes_per_domain = 1;
  cfg.nodes_per_rack = 1;
  auto c = Cluster::Create(cfg);
  ASSERT_TRUE(c.ok());
  std::istringstream csv(
      "job_id,arrival_s,duration_s,tasks,cards_per_task,priority,preemptable\n"
      "a,0,10,1,1,5,false\n"
      "b,0,100,1,1,5,false\n"
      "c,20,10,1,4,5,false\n");
  auto jobs = ParseTrace(csv, "test");
  ASSERT_TRUE(jobs.ok()) << jobs.status().message();
  for (Policy p : {Policy::kDraAligned, Policy::kDraAll}) {
    SimOptions o;
    o.policy = p;
    auto r = Simulate(*c, *jobs, o);
    EXPECT_EQ(r.started, 3) << PolicyName(p);
    EXPECT_EQ(r.multi_card_pods, 1) << PolicyName(p);
    EXPECT_EQ(r.linked_pods, 1) << PolicyName(p);
    EXPECT_DOUBLE_EQ(r.start_s[2], 20) << PolicyName(p);
  }
  EXPECT_EQ(ParsePolicy("dra-aligned").value(), Policy::kDraAligned);
  EXPECT_EQ(ParsePolicy("dra-all").value(), Policy::kDraAll);
}

}  // namespace
}  // namespace hyperaccel::sim
