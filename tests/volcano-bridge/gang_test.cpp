// A gang of 4 tasks × 4 cards: every task on a linked set, all in one link domain when possible.
#include <gtest/gtest.h>

#include <set>

#include "mini_volcano.h"

namespace hyperaccel::bridge {
namespace {

using synthetic::JobSpec;
using synthetic::NodeSpec;

NodeSpec MakeNode(const std::string& name, const std::string& domain, placement::Mask busy) {
  NodeSpec n;
  n.name = name;
  n.domain = domain;
  n.rack = "idc1.rack1";
  n.idc = "idc1";
  n.busy = busy;
  return n;
}

JobSpec Gang(int tasks, bool linked_on_pods) {
  return synthetic::LinkedGang("ml-team/llm-serve", tasks, 4, "gang-", "llm-serve-worker-", linked_on_pods);
}

// Every tentative allocation is a linked set of 4 cards on its node; returns the nodes used.
std::vector<std::string> CheckLinked(Bridge& b) {
  std::vector<std::string> nodes;
  for (const auto& t : b.state().Tentatives()) {
    NodeCards cards;
    EXPECT_TRUE(b.state().CardsOfKnownNode(t.node, &cards));
    EXPECT_NE(cards.topology, nullptr);
    if (!cards.topology) continue;
    EXPECT_EQ(std::popcount(t.cards), 4) << t.task_uid;
    EXPECT_TRUE(placement::Evaluate(cards.topology->graph, t.cards, t.cards).connected)
        << t.task_uid << " on " << t.node;
    nodes.push_back(t.node);
  }
  return nodes;
}

// Domain A (3 nodes, some cards busy) can take the whole gang; domain B's single node is the best
// fit for one task on its own (exactly 4 linked free cards), which a gang-blind scorer would pick.
std::vector<NodeSpec> Cluster() {
  return {MakeNode("b1", "ld-b", 0b00001111),   // free: 4 linked cards (perfect fit)
          MakeNode("a1", "ld-a", 0b00000011),   // free: an arc of 6 -> one task
          MakeNode("a2", "ld-a", 0),            // free: 8 -> two tasks
          MakeNode("a3", "ld-a", 0b11110000)};  // free: 4 -> one task
}

TEST(Gang, FourTasksLandInOneLinkDomainOnLinkedSets) {
  Bridge bridge({}, nullptr);
  testing::MiniVolcano volcano(&bridge, Cluster());
  const JobSpec job = Gang(4, false);
  volcano.OpenSession({job});
  std::set<std::string> domains;
  for (const auto& t : job.tasks) {
    const std::string node = volcano.Place(t);
    ASSERT_FALSE(node.empty()) << t.uid << " found no node";
    domains.insert(volcano.Find(node)->domain);
  }
  EXPECT_EQ(domains, (std::set<std::string>{"ld-a"}));
  EXPECT_EQ(CheckLinked(bridge).size(), 4u);
}

TEST(Gang, DryRunsAllocateAndDeallocateRepeatedly) {
  Bridge bridge({}, nullptr);
  const JobSpec job = Gang(4, true);
  for (int round = 0; round < 3; ++round) {  // Volcano dry-runs a candidate, discards, retries
    testing::MiniVolcano volcano(&bridge, Cluster());
    volcano.OpenSession({job});
    for (const auto& t : job.tasks) ASSERT_FALSE(volcano.Place(t).empty());
    EXPECT_EQ(CheckLinked(bridge).size(), 4u);
    for (const auto& t : job.tasks) {
      EXPECT_EQ(bridge.Handle(Verb::kDeallocate, JsonBuffer(synthetic::TaskEventBody(t))).status, 200);
    }
    EXPECT_TRUE(bridge.state().Tentatives().empty());
  }
}

TEST(Gang, SplitsOnLinkedSetsWhenNoDomainIsBigEnough) {
  Bridge bridge({}, nullptr);
  testing::MiniVolcano volcano(&bridge,
                               {MakeNode("a1", "ld-a", 0b00001111), MakeNode("a2", "ld-a", 0b11110000),
                                MakeNode("b1", "ld-b", 0b00001111), MakeNode("b2", "ld-b", 0b00001111)});
  const JobSpec job = Gang(4, true);
  volcano.OpenSession({job});
  for (const auto& t : job.tasks) ASSERT_FALSE(volcano.Place(t).empty());
  EXPECT_EQ(CheckLinked(bridge).size(), 4u);
}

TEST(Gang, WithoutSnapshotLaterTasksFollowTheFirst) {
  Bridge bridge({}, nullptr);  // onSessionOpen disabled: state comes from request bodies only
  testing::MiniVolcano volcano(&bridge, Cluster());
  const JobSpec job = Gang(3, true);
  std::set<std::string> domains;
  for (const auto& t : job.tasks) {
    const std::string node = volcano.Place(t);
    ASSERT_FALSE(node.empty());
    domains.insert(volcano.Find(node)->domain);
  }
  EXPECT_EQ(CheckLinked(bridge).size(), 3u);
  EXPECT_LE(domains.size(), 2u);
}

}  // namespace
}  // namespace hyperaccel::bridge
