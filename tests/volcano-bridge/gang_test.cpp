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

// Link-domain wait: two domains with room for 2 tasks of 4 cards each (a 3-task gang fits one
// empty domain, 4 slots, but neither has room for it now).
std::vector<NodeSpec> TwoHalfFullDomains() {
  return {MakeNode("a1", "ld-a", 0b00001111), MakeNode("a2", "ld-a", 0b11110000), MakeNode("b1", "ld-b", 0),
          MakeNode("b2", "ld-b", 0xFF)};
}

JobSpec WaitingGang(const std::string& pod_wait, const std::string& group_wait = "") {
  JobSpec job = Gang(3, true);
  job.domain_wait = group_wait;
  for (auto& t : job.tasks) t.domain_wait = pod_wait;
  return job;
}

// Places every task of `job` in one fresh session; returns the link domains used, or nothing when
// some task found no node (the gang waits).
std::set<std::string> PlaceGang(Bridge& bridge, const std::vector<NodeSpec>& nodes, const JobSpec& job,
                                bool open_session = true) {
  testing::MiniVolcano volcano(&bridge, nodes);
  if (open_session) {
    volcano.OpenSession({job});
  } else {
    EXPECT_EQ(bridge.Handle(Verb::kOnSessionClose, JsonBuffer("{}")).status, 200);
  }
  std::set<std::string> domains;
  for (const auto& t : job.tasks) {
    const std::string node = volcano.Place(t);
    if (node.empty()) {
      for (const auto& u : job.tasks)
        bridge.Handle(Verb::kDeallocate, JsonBuffer(synthetic::TaskEventBody(u)));
      return {};
    }
    domains.insert(volcano.Find(node)->domain);
  }
  return domains;
}

// A bridge on a clock the test moves, with `default_wait_s` as its --link-domain-wait-seconds.
struct ClockedBridge {
  explicit ClockedBridge(double default_wait_s = 0, metrics::Registry* registry = nullptr)
      : bridge(Options(default_wait_s), registry) {}
  BridgeOptions Options(double default_wait_s) {
    BridgeOptions o;
    o.now = [this] { return now; };
    o.link_domain_wait_s = default_wait_s;
    return o;
  }
  double now = 100;
  Bridge bridge;
};

TEST(LinkDomainWait, HoldsTheGangUntilItsWaitEndsThenLetsItSpread) {
  metrics::Registry registry;
  ClockedBridge clocked(0, &registry);
  Bridge& bridge = clocked.bridge;
  double& now = clocked.now;
  const JobSpec job = WaitingGang("10m");
  EXPECT_TRUE(PlaceGang(bridge, TwoHalfFullDomains(), job).empty());  // the hold starts at 100
  EXPECT_TRUE(bridge.state().Tentatives().empty());
  EXPECT_NE(registry.Render().find("hyperaccel_bridge_link_domain_holds_total 3"), std::string::npos)
      << registry.Render();  // a1, a2, b1 passed the card check and were held
  now = 699;
  EXPECT_TRUE(PlaceGang(bridge, TwoHalfFullDomains(), job).empty());
  now = 700;  // held its 10 minutes: the usual rules place it across the two domains
  EXPECT_EQ(PlaceGang(bridge, TwoHalfFullDomains(), job), (std::set<std::string>{"ld-a", "ld-b"}));
  EXPECT_EQ(CheckLinked(bridge).size(), 3u);
}

TEST(LinkDomainWait, TheWaitCountsFromWhenTheClusterFirstHadRoom) {
  ClockedBridge clocked;
  Bridge& bridge = clocked.bridge;
  double& now = clocked.now;
  const JobSpec job = WaitingGang("10m");
  std::vector<NodeSpec> full = TwoHalfFullDomains();
  full[2].busy = 0xFF;  // 2 free slots of 4 cards in the cluster: the gang of 3 cannot start anyway
  EXPECT_TRUE(PlaceGang(bridge, full, job).empty());
  now = 1000;  // room for 3 in the cluster, none in one domain: the hold starts now
  EXPECT_TRUE(PlaceGang(bridge, TwoHalfFullDomains(), job).empty());
  now = 1599;
  EXPECT_TRUE(PlaceGang(bridge, TwoHalfFullDomains(), job).empty());
  now = 1600;
  EXPECT_EQ(PlaceGang(bridge, TwoHalfFullDomains(), job).size(), 2u);
}

TEST(LinkDomainWait, AHoldEndsWhenItsJobLeavesTheSnapshot) {
  ClockedBridge clocked;
  Bridge& bridge = clocked.bridge;
  double& now = clocked.now;
  const JobSpec job = WaitingGang("10m");
  EXPECT_TRUE(PlaceGang(bridge, TwoHalfFullDomains(), job).empty());
  testing::MiniVolcano other(&bridge, TwoHalfFullDomains());
  other.OpenSession({});  // the job was deleted: its hold is forgotten
  now = 800;              // resubmitted under the same name: held afresh, from 800
  EXPECT_TRUE(PlaceGang(bridge, TwoHalfFullDomains(), job).empty());
  now = 1400;
  EXPECT_EQ(PlaceGang(bridge, TwoHalfFullDomains(), job).size(), 2u);
}

TEST(LinkDomainWait, AGangHeldPlacesAllItsTasksInTheDomainThatFreesUp) {
  ClockedBridge clocked;
  Bridge& bridge = clocked.bridge;
  std::vector<NodeSpec> nodes = TwoHalfFullDomains();
  nodes[3].busy = 0b11110000;  // b2 frees 4 cards: ld-b now has room for 3 tasks
  EXPECT_EQ(PlaceGang(bridge, nodes, WaitingGang("10m")), (std::set<std::string>{"ld-b"}));
  EXPECT_EQ(CheckLinked(bridge).size(), 3u);
}

TEST(LinkDomainWait, PodAnnotationThenPodGroupThenTheBridgeDefault) {
  {
    ClockedBridge clocked;  // no default: only annotated gangs wait
    Bridge& bridge = clocked.bridge;
    EXPECT_EQ(PlaceGang(bridge, TwoHalfFullDomains(), WaitingGang("")).size(), 2u);
    EXPECT_TRUE(PlaceGang(bridge, TwoHalfFullDomains(), WaitingGang("", "10m")).empty());
  }
  {
    ClockedBridge clocked(600);
    Bridge& bridge = clocked.bridge;
    EXPECT_TRUE(PlaceGang(bridge, TwoHalfFullDomains(), WaitingGang("")).empty());
    // The pod's own annotation wins over its PodGroup's and the default; "0" opts out.
    EXPECT_EQ(PlaceGang(bridge, TwoHalfFullDomains(), WaitingGang("0", "10m")).size(), 2u);
    // An unreadable annotation is ignored (and logged), so the default applies.
    EXPECT_TRUE(PlaceGang(bridge, TwoHalfFullDomains(), WaitingGang("ten minutes")).empty());
    // Without onSessionOpen the bridge cannot see the other domains' room: no hold.
    EXPECT_EQ(PlaceGang(bridge, TwoHalfFullDomains(), WaitingGang("10m"), /*open_session=*/false).size(), 2u);
  }
}

TEST(LinkDomainWait, GangsLargerThanAnyDomainAndSinglePodsAreNeverHeld) {
  ClockedBridge clocked(600);
  Bridge& bridge = clocked.bridge;
  // 5 tasks of 4 cards: an empty domain of two 8-card nodes holds 4, so waiting cannot help.
  std::vector<NodeSpec> nodes = TwoHalfFullDomains();
  nodes[3].busy = 0;
  JobSpec big = Gang(5, true);
  EXPECT_EQ(PlaceGang(bridge, nodes, big).size(), 2u);
  JobSpec single = Gang(1, true);
  EXPECT_EQ(PlaceGang(bridge, TwoHalfFullDomains(), single).size(), 1u);
}

}  // namespace
}  // namespace hyperaccel::bridge
