// Decision rules on plain values (docs/volcano-bridge.md "Decision rules").
#include "hyperaccel/bridge/decide.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <numeric>
#include <random>

#include "hyperaccel/bridge/state.h"
#include "synthetic.h"

namespace hyperaccel::bridge {
namespace {

// A node of `cards` cards in a ring, with the given busy / unhealthy cards.
NodeCards Ring(const std::string& name, int cards, Mask busy, Mask unhealthy = 0) {
  synthetic::NodeSpec spec;
  spec.name = name;
  spec.cards = cards;
  spec.busy = busy;
  spec.unhealthy = unhealthy;
  static TopologyCache cache;
  NodeCards n;
  n.name = name;
  n.topology = cache.Get(synthetic::TopologyAnnotation(spec), name);
  EXPECT_NE(n.topology, nullptr);
  if (n.topology) {
    n.free = n.topology->free;
    n.free_count = std::popcount(n.free);
    n.capacity = std::popcount(n.topology->healthy);
  }
  return n;
}

NodeCards Counts(const std::string& name, int capacity, int free) {
  NodeCards n;
  n.name = name;
  n.capacity = capacity;
  n.free_count = free;
  return n;
}

TaskNeed Need(int cards, bool linked = false, bool spot = false) {
  TaskNeed t;
  t.cards = cards;
  t.require_linked = linked;
  t.spot = spot;
  return t;
}

TEST(Predicate, CountsOnly) {
  EXPECT_EQ(DecidePredicate(Need(4), Counts("n", 8, 4), "r").code, kPass);
  auto busy = DecidePredicate(Need(4), Counts("n", 8, 3), "r");
  EXPECT_EQ(busy.code, kUnschedulable);
  EXPECT_EQ(busy.reason, "r: 4 requested, 3 free on n");
  EXPECT_EQ(DecidePredicate(Need(4), Counts("n", 2, 2), "r").code, kUnschedulableForever);
  EXPECT_EQ(DecidePredicate(Need(0), Counts("n", 0, 0), "r").code, kPass);
  // Without a topology the links are unknown: require-linked is judged by counts.
  EXPECT_EQ(DecidePredicate(Need(4, true), Counts("n", 8, 4), "r").code, kPass);
}

TEST(Predicate, LinkedSets) {
  // Ring of 8, every other card busy: 4 free cards, no two of them linked.
  NodeCards alternate = Ring("n", 8, 0b01010101);
  EXPECT_EQ(DecidePredicate(Need(4), alternate, "r").code, kPass);
  auto d = DecidePredicate(Need(4, true), alternate, "r");
  EXPECT_EQ(d.code, kUnschedulable) << d.reason;  // evicting could free a linked arc
  EXPECT_EQ(d.reason, "r: no free linked set of 4 on n");
  // Cards 1 and 5 dead: the ring is cut into two arcs of 3; 4 linked cards can never exist.
  NodeCards cut = Ring("n", 8, 0, 0b00100010);
  auto never = DecidePredicate(Need(4, true), cut, "r");
  EXPECT_EQ(never.code, kUnschedulableForever);
  EXPECT_EQ(never.reason, "r: no linked set of 4 on n");
  EXPECT_EQ(DecidePredicate(Need(8), cut, "r").code, kUnschedulableForever);
  EXPECT_EQ(DecidePredicate(Need(6), Ring("n", 8, 0b111), "r").code, kUnschedulable);
}

TEST(Predicate, DependsOnlyOnTaskAndNode) {
  NodeCards n = Ring("n", 8, 0b11);
  const auto a = DecidePredicate(Need(4, true), n, "r");
  for (int i = 0; i < 5; ++i) {
    const auto b = DecidePredicate(Need(4, true), n, "r");
    EXPECT_EQ(a.code, b.code);
    EXPECT_EQ(a.reason, b.reason);
  }
}

TEST(Prediction, TakesALinkedSetAndTakeCardsRemovesIt) {
  NodeCards n = Ring("n", 8, 0);
  const Mask m = PredictCards(Need(4, true), n);
  ASSERT_EQ(std::popcount(m), 4);
  EXPECT_TRUE(placement::Evaluate(n.topology->graph, n.free, m).connected);
  TakeCards(n, 4);
  EXPECT_EQ(n.free_count, 4);
  EXPECT_TRUE(placement::ScoreNode(n.topology->graph, n.free, {4, true, false}).fits_linked);
}

TEST(Prioritize, BaseScoresWithoutGang) {
  const std::vector<NodeCards> nodes = {Counts("half", 8, 4), Counts("empty", 8, 8), Counts("full", 8, 2)};
  auto scores = DecidePrioritize(Need(4), nodes, GangView{}, 1.0);
  ASSERT_EQ(scores.size(), 2u);  // "full" does not fit and is left out
  EXPECT_EQ(scores[0].node, "half");
  EXPECT_DOUBLE_EQ(scores[0].score, 100);
  EXPECT_DOUBLE_EQ(scores[1].score, 50);
  auto weighted = DecidePrioritize(Need(4), nodes, GangView{}, 10.0);
  EXPECT_DOUBLE_EQ(weighted[0].score, 1000);
}

TEST(Prioritize, GangLocalityDomainThenRackThenIdc) {
  std::vector<NodeCards> nodes;
  for (const char* name : {"same-domain", "same-rack", "same-idc", "elsewhere"})
    nodes.push_back(Ring(name, 8, 0));
  nodes[0].link_domain = "ld-1";
  nodes[1].link_domain = "ld-2";
  nodes[1].rack = "i.r1";
  nodes[2].link_domain = "ld-3";
  nodes[2].rack = "i.r2";
  nodes[2].idc = "i";
  nodes[3].link_domain = "ld-4";
  nodes[3].rack = "j.r9";
  nodes[3].idc = "j";
  // Make the far node the best fit on its own.
  nodes[3] = Ring("elsewhere", 4, 0);
  nodes[3].idc = "j";
  GangView gang;
  gang.domains = {"ld-1"};
  gang.racks = {"i.r1"};
  gang.idcs = {"i"};
  auto scores = DecidePrioritize(Need(4), nodes, gang, 1.0);
  ASSERT_EQ(scores.size(), 4u);
  EXPECT_GT(scores[0].score, scores[1].score);
  EXPECT_GT(scores[1].score, scores[2].score);
  EXPECT_GT(scores[2].score, scores[3].score);
  for (const auto& s : scores) {
    EXPECT_GE(s.score, 0);
    EXPECT_LE(s.score, 100);
  }
}

TEST(Prioritize, SpotPrefersFragmentedReservedPrefersBestFit) {
  const std::vector<NodeCards> nodes = {Ring("fragmented", 8, 0b10100100), Ring("clean", 8, 0)};
  auto spot = DecidePrioritize(Need(1, false, true), nodes, GangView{}, 1.0);
  ASSERT_EQ(spot.size(), 2u);
  EXPECT_GT(spot[0].score, spot[1].score);
  // A reserved 2-card task keeps the clean node's 8-card linked set whole.
  auto reserved = DecidePrioritize(Need(2), nodes, GangView{}, 1.0);
  ASSERT_EQ(reserved.size(), 2u);
  EXPECT_GT(reserved[0].score, reserved[1].score);
}

TEST(Prioritize, EqualFitGoesToTheFullestNode) {
  // One card on an empty ring of 8 or on a 7-card arc: ScoreNode gives both 74 (fill 1/8 and 1/7
  // both round to 4 of 30, +10 ordered, +5 one NUMA node, +5 one switch group).
  const std::vector<NodeCards> nodes = {Ring("empty", 8, 0), Ring("seven", 8, 0b1)};
  for (const auto& n : nodes)
    EXPECT_EQ(placement::ScoreNode(n.topology->graph, n.free, {1, false, false}).score, 74);
  // Within the point, the node left fullest wins: 74 - 1 + (8 - free after) / 8. The empty node
  // is kept whole for a task that needs all 8 cards.
  auto scores = DecidePrioritize(Need(1), nodes, GangView{}, 1.0);
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_DOUBLE_EQ(scores[0].score, 73.125);  // 7 left
  EXPECT_DOUBLE_EQ(scores[1].score, 73.25);   // 6 left
  // The whole points still decide first: a 6-card arc (fill 1/6, 5 of 30) beats the fuller
  // node whose arc is 7 long: 75 - 1 + 3/8.
  EXPECT_DOUBLE_EQ(BaseScore(Need(1), Ring("six", 8, 0b11)), 74.375);
  // A task that takes every free card scores ScoreNode's points exactly.
  const NodeCards half = Ring("half", 8, 0b11110000);
  const int whole = placement::ScoreNode(half.topology->graph, half.free, {4, false, false}).score;
  EXPECT_EQ(whole, 100);
  EXPECT_DOUBLE_EQ(BaseScore(Need(4), half), 100.0);
  // Unhealthy cards count neither as capacity nor as free: 6 healthy, 2 busy, 1 asked, 3 left.
  const NodeCards sick = Ring("sick", 8, 0b0011, 0b11000000);
  const int sick_points = placement::ScoreNode(sick.topology->graph, sick.free, {1, false, false}).score;
  EXPECT_DOUBLE_EQ(BaseScore(Need(1), sick), sick_points - 1 + 3.0 / 6);
}

TEST(Prioritize, SinglePodFillsTheBusierLinkDomainWithinAPoint) {
  // The two nodes of EqualFitGoesToTheFullestNode (both 74 for one card). "empty" sits in a link
  // domain of 16 cards with 12 busy (its partner is busy), "seven" in one with 1 busy (itself):
  // within the point, half the domain's busy share plus half the node's own fill decides:
  //   empty: 73 + 0.5 x 12/16 + 0.5 x 1/8 = 73.4375     seven: 73 + 0.5 x 1/16 + 0.5 x 2/8 = 73.15625
  std::vector<NodeCards> nodes = {Ring("empty", 8, 0), Ring("seven", 8, 0b1)};
  nodes[0].link_domain = "ld-busy";
  nodes[0].domain_busy = 12;
  nodes[0].domain_cards = 16;
  nodes[1].link_domain = "ld-idle";
  nodes[1].domain_busy = 1;
  nodes[1].domain_cards = 16;
  auto scores = DecidePrioritize(Need(1), nodes, GangView{}, 1.0);
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_DOUBLE_EQ(scores[0].score, 73.4375);
  EXPECT_DOUBLE_EQ(scores[1].score, 73.15625);
  EXPECT_DOUBLE_EQ(DecidePrioritize(Need(1), nodes, GangView{}, 2.0)[0].score, 146.875);
  // Whole points still come first: a 6-card arc (75 for one card) in an idle domain beats both.
  nodes.push_back(Ring("six", 8, 0b11));
  nodes[2].link_domain = "ld-six";
  nodes[2].domain_busy = 2;
  nodes[2].domain_cards = 16;
  scores = DecidePrioritize(Need(1), nodes, GangView{}, 1.0);
  ASSERT_EQ(scores.size(), 3u);
  EXPECT_DOUBLE_EQ(scores[2].score, 74 + 0.5 * 2 / 16 + 0.5 * 3 / 8);
  // Unknown domain load (0 / 0): the node-fill rule alone, as before.
  nodes[0].domain_cards = 0;
  EXPECT_DOUBLE_EQ(DecidePrioritize(Need(1), nodes, GangView{}, 1.0)[0].score, 73.125);
  // Not for gangs: the first pod of a gang of two is scored by domain room (every domain here has
  // room for both pods: 0.75 x 100), later pods by locality, whatever the domain load says.
  nodes[0].domain_cards = 16;
  GangView first;
  first.remaining = 2;
  const auto gang_scores = DecidePrioritize(Need(1), nodes, first, 1.0);
  ASSERT_EQ(gang_scores.size(), 3u);
  EXPECT_DOUBLE_EQ(gang_scores[0].score, 0.25 * 73.125 + 75);
  GangView placed;
  placed.domains = {"ld-idle"};
  EXPECT_DOUBLE_EQ(DecidePrioritize(Need(1), nodes, placed, 1.0)[1].score, 0.25 * 73.25 + 75);
}

Node CountNode(const std::string& name, const std::string& domain, int allocatable, int idle) {
  Node n;
  n.name = name;
  n.link_domain = domain;
  n.allocatable_cards = allocatable;
  n.idle_cards = idle;
  return n;
}

TEST(State, DomainLoadSumsEveryNodeOfTheDomain) {
  // Snapshot: a1 (6 of 8 busy) and a2 (idle) in ld-a, b1 (3 busy) in ld-b, c1 unlabelled.
  SessionState state;
  state.OpenSession(Snapshot{{CountNode("a1", "ld-a", 8, 2), CountNode("a2", "ld-a", 8, 8),
                              CountNode("b1", "ld-b", 8, 5), CountNode("c1", "", 8, 8)},
                             {}});
  // A one-card task was allocated on a1 in this session: a1 now has 7 busy.
  Task placed;
  placed.uid = "t-1";
  placed.node_name = "a1";
  placed.cards = 1;
  state.Allocate(placed, state.NeedOf(placed));
  // The request lists a2 (Volcano now says 2 busy), b1 and c1; a1 is not in it.
  std::vector<NodeCards> cards;
  for (const Node& n :
       {CountNode("a2", "ld-a", 8, 6), CountNode("b1", "ld-b", 8, 5), CountNode("c1", "", 8, 8)})
    cards.push_back(state.CardsFromBody(n));
  state.AddDomainLoad(&cards);
  EXPECT_EQ(cards[0].domain_busy, 2 + 7);  // a2 as given, a1 from the session
  EXPECT_EQ(cards[0].domain_cards, 16);
  EXPECT_EQ(cards[1].domain_busy, 3);
  EXPECT_EQ(cards[1].domain_cards, 8);
  EXPECT_EQ(cards[2].domain_busy, 0);  // no link domain: unknown
  EXPECT_EQ(cards[2].domain_cards, 0);
  // A node listed twice counts once.
  cards.push_back(cards[1]);
  state.AddDomainLoad(&cards);
  EXPECT_EQ(cards[1].domain_busy, 3);
  EXPECT_EQ(cards[3].domain_cards, 8);
}

// A node with a topology annotation: a ring of 8 cards, `busy` allocated, Volcano's Idle as given
// (-1: the annotation's free cards).
Node RingNode(const std::string& name, const std::string& domain, Mask busy, int idle = -1) {
  synthetic::NodeSpec spec;
  spec.name = name;
  spec.busy = busy;
  Node n;
  n.name = name;
  n.link_domain = domain;
  n.topology = synthetic::TopologyAnnotation(spec);
  n.allocatable_cards = 8;
  n.idle_cards = idle >= 0 ? idle : 8 - std::popcount(busy);
  return n;
}

Task TaskOn(const std::string& uid, const std::string& node, int cards) {
  Task t;
  t.uid = uid;
  t.job = "ns/" + uid;
  t.node_name = node;
  t.cards = cards;
  return t;
}

// The session keeps each domain's busy / all cards as allocations come and go and as nodes are
// seen again: every value below is worked out by hand.
TEST(State, DomainLoadFollowsAllocationsViewsAndSessions) {
  SessionState state;
  // ld-a: a1 (2 busy), a2 (Idle 5 of 8 free in the annotation: Volcano already counts 1 more busy,
  // 4 busy), a3 counts only (3 busy of 8); ld-b: b1 (empty).
  state.OpenSession(Snapshot{{RingNode("a1", "ld-a", 0b11), RingNode("a2", "ld-a", 0b111, 4),
                              CountNode("a3", "ld-a", 8, 5), RingNode("b1", "ld-b", 0)},
                             {}});
  auto load = [&](const std::vector<Node>& nodes) {
    std::vector<NodeCards> cards;
    cards.reserve(nodes.size());
    for (const Node& n : nodes) cards.push_back(state.CardsFromBody(n));
    state.AddDomainLoad(&cards);
    return cards;
  };
  auto cards = load({RingNode("b1", "ld-b", 0)});
  EXPECT_EQ(cards[0].domain_busy, 0);
  EXPECT_EQ(cards[0].domain_cards, 8);
  // Tentative allocations: 2 cards on a1, 4 on b1, 1 on a3.
  state.Allocate(TaskOn("t1", "a1", 2), state.NeedOf(TaskOn("t1", "a1", 2)));
  state.Allocate(TaskOn("t2", "b1", 4), state.NeedOf(TaskOn("t2", "b1", 4)));
  state.Allocate(TaskOn("t3", "a3", 1), state.NeedOf(TaskOn("t3", "a3", 1)));
  // A request for b1 (Volcano's view still empty: the body is newer than nothing, counts as given).
  cards = load({RingNode("b1", "ld-b", 0, 4)});
  EXPECT_EQ(cards[0].domain_busy, 4);
  EXPECT_EQ(cards[0].domain_cards, 8);
  // A request for a2 alone: a1 2 + 2 tentative, a3 3 + 1 tentative, a2 as given (4).
  cards = load({RingNode("a2", "ld-a", 0b111, 4)});
  EXPECT_EQ(cards[0].domain_busy, 4 + 4 + 4);
  EXPECT_EQ(cards[0].domain_cards, 24);
  // t1 moves from a1 to a2 (allocated again under the same UID), t3 is deallocated.
  state.Allocate(TaskOn("t1", "a2", 2), state.NeedOf(TaskOn("t1", "a2", 2)));
  state.Deallocate(TaskOn("t3", "a3", 1));
  // a2 was seen with Idle 4 before t1 landed on it: 4 free less 2 newer = 6 busy.
  cards = load({RingNode("b1", "ld-b", 0, 4)});
  EXPECT_EQ(cards[0].domain_busy, 4);
  NodeCards a1;
  ASSERT_TRUE(state.CardsOfKnownNode("a1", &a1));
  EXPECT_EQ(a1.free_count, 6);
  cards = load({RingNode("a1", "ld-a", 0b11), RingNode("b1", "ld-b", 0, 4)});
  EXPECT_EQ(cards[0].domain_busy, 2 + 6 + 3);
  EXPECT_EQ(cards[0].domain_cards, 24);
  // a2 seen again with Volcano's fresh count (6 busy): the same load, now from the new view.
  cards = load({RingNode("a2", "ld-a", 0b111, 2)});
  EXPECT_EQ(cards[0].domain_busy, 2 + 6 + 3);
  // A new session forgets tentative allocations and views.
  state.OpenSession(Snapshot{{RingNode("a1", "ld-a", 0b1), RingNode("a2", "ld-a", 0)}, {}});
  cards = load({RingNode("a1", "ld-a", 0b1)});
  EXPECT_EQ(cards[0].domain_busy, 1);
  EXPECT_EQ(cards[0].domain_cards, 16);
  state.CloseSession();
  cards = load({RingNode("a1", "ld-a", 0b1)});
  EXPECT_EQ(cards[0].domain_busy, 1);  // no session: the request's own nodes only
  EXPECT_EQ(cards[0].domain_cards, 8);
}

// The sums the session keeps equal the sum over every node of its domain of what the session
// knows of that node (CardsOfKnownNode), across random allocations, deallocations and views.
TEST(State, DomainLoadEqualsTheSumOfEveryNodesCards) {
  std::mt19937 rng(7);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  const std::vector<std::string> domains = {"ld-0", "ld-1", "ld-2"};
  auto node = [&](int i) {
    const std::string name = "n" + std::to_string(i);
    const std::string& domain = domains[static_cast<size_t>(i % 3)];
    if (i % 5 == 4) return CountNode(name, domain, 8, pick(9));
    const Mask busy = static_cast<Mask>(pick(256));
    const int free = 8 - std::popcount(busy);
    return RingNode(name, domain, busy, pick(3) == 0 ? pick(free + 1) : free);
  };
  SessionState state;
  std::vector<Node> snapshot;
  snapshot.reserve(15);
  for (int i = 0; i < 15; ++i) snapshot.push_back(node(i));
  state.OpenSession(Snapshot{snapshot, {}});
  for (int step = 0; step < 400; ++step) {
    const int what = pick(4);
    const std::string uid = "t" + std::to_string(pick(30));
    if (what == 0) {
      const Task t = TaskOn(uid, "n" + std::to_string(pick(15)), 1 + pick(4));
      state.Allocate(t, state.NeedOf(t));
    } else if (what == 1) {
      state.Deallocate(TaskOn(uid, "", 0));
    }
    // A request of 1 to 4 distinct nodes (a node listed twice counts once, as first given).
    std::vector<int> order(15);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<NodeCards> cards;
    for (int r = pick(4); r >= 0; --r)
      cards.push_back(state.CardsFromBody(node(order[static_cast<size_t>(r)])));
    state.AddDomainLoad(&cards);
    for (const NodeCards& c : cards) {
      int busy = 0, all = 0;
      for (int i = 0; i < 15; ++i) {
        const std::string name = "n" + std::to_string(i);
        if (domains[static_cast<size_t>(i % 3)] != c.link_domain) continue;
        NodeCards known;
        ASSERT_TRUE(state.CardsOfKnownNode(name, &known));
        busy += std::max(0, known.capacity - known.free_count);
        all += known.capacity;
      }
      ASSERT_EQ(c.domain_busy, busy) << "step " << step << " node " << c.name;
      ASSERT_EQ(c.domain_cards, all) << "step " << step << " node " << c.name;
    }
  }
}

TEST(Victims, FewestThenLowestPriority) {
  NodeCards n = Counts("n", 8, 0);
  // Candidates: (cards, priority).
  std::vector<Candidate> c = {{2, 10}, {2, 1}, {4, 50}, {4, 5}, {0, 0}};
  auto d = DecideVictims(Need(4), n, c);
  ASSERT_EQ(d.status, kVotePermit) << d.reason;
  EXPECT_EQ(d.chosen, (std::vector<size_t>{3}));  // one 4-card victim beats two 2-card ones
  auto eight = DecideVictims(Need(8), n, c);
  ASSERT_EQ(eight.status, kVotePermit);
  EXPECT_EQ(eight.chosen, (std::vector<size_t>{2, 3}));
}

TEST(Victims, AbstainRejectAndLinked) {
  EXPECT_EQ(DecideVictims(Need(2), Counts("n", 8, 4), {{2, 0}}).status, kVoteAbstain);  // fits already
  EXPECT_EQ(DecideVictims(Need(0), Counts("n", 8, 0), {{2, 0}}).status, kVoteAbstain);  // no cards asked
  EXPECT_EQ(DecideVictims(Need(4), Counts("n", 8, 0), {{2, 0}, {0, 0}}).status, kVoteReject);
  EXPECT_EQ(DecideVictims(Need(16), Counts("n", 8, 0), {{8, 0}}).status, kVoteReject);
  // Alternate cards busy: a linked 4-set needs at least 2 busy cards freed, although 4 are free.
  NodeCards alternate = Ring("n", 8, 0b01010101);
  auto d = DecideVictims(Need(4, true), alternate, {{1, 0}, {1, 0}, {1, 7}, {1, 9}});
  ASSERT_EQ(d.status, kVotePermit) << d.reason;
  EXPECT_EQ(d.chosen, (std::vector<size_t>{0, 1}));
}

}  // namespace
}  // namespace hyperaccel::bridge

namespace hyperaccel::bridge {
namespace {

// Prioritize shares placement answers between nodes of one graph shape; the scores must be
// exactly those computed node by node without sharing.
TEST(Prioritize, SharedAnswersEqualPerNodeAnswers) {
  std::vector<NodeCards> shared, alone;
  for (int i = 0; i < 60; ++i) {
    const Mask keep = i % 3 == 0 ? Mask{0x0F} : Mask{0xFF};
    const Mask busy = (static_cast<Mask>(i) * 37 + 11) & keep;
    NodeCards n = Ring("node-" + std::to_string(i), 8, busy, i % 7 == 0 ? 0b100 : 0);
    n.link_domain = "ld-" + std::to_string(i / 4);
    n.rack = "rack-" + std::to_string(i / 16);
    ASSERT_NE(n.topology, nullptr);
    ASSERT_NE(n.topology->shape, 0U);
    shared.push_back(n);
    auto copy = std::make_shared<Topology>(*n.topology);
    copy->shape = 0;  // no sharing
    n.topology = copy;
    alone.push_back(n);
  }
  // Nodes differ only in card IDs share a shape; a different health pattern does not.
  EXPECT_EQ(shared[1].topology->shape, shared[2].topology->shape);
  EXPECT_NE(shared[0].topology->shape, shared[1].topology->shape);
  for (int k : {1, 2, 3, 4, 8}) {
    for (bool linked : {false, true}) {
      for (int remaining : {1, 3}) {
        GangView gang;
        gang.remaining = remaining;
        const auto a = DecidePrioritize(Need(k, linked), shared, gang, 1.0);
        const auto b = DecidePrioritize(Need(k, linked), alone, gang, 1.0);
        ASSERT_EQ(a.size(), b.size());
        for (size_t i = 0; i < a.size(); ++i) {
          EXPECT_EQ(a[i].node, b[i].node);
          EXPECT_DOUBLE_EQ(a[i].score, b[i].score) << a[i].node << " k=" << k;
        }
      }
    }
  }
}

// A gang of 4 tasks, waited 100 s of a 600 s link-domain wait, in a cluster whose largest link
// domain could hold 4 such tasks.
DomainHold Held() {
  DomainHold h;
  h.wait_s = 600;
  h.age_s = 100;
  h.gang_tasks = 4;
  h.unplaced = 4;
  h.largest_domain_slots = 4;
  h.node_domain = "ld-a";
  return h;
}

TEST(DomainHold, AppliesOnlyToGangsThatFitOneDomainInsideTheirWait) {
  EXPECT_TRUE(HoldApplies(Held()));
  DomainHold h = Held();
  h.wait_s = 0;  // no wait asked for
  EXPECT_FALSE(HoldApplies(h));
  h = Held();
  h.age_s = 600;  // the wait is over
  EXPECT_FALSE(HoldApplies(h));
  h.age_s = 599.9;
  EXPECT_TRUE(HoldApplies(h));
  h = Held();
  h.gang_tasks = 1;  // a single pod has nothing to keep together
  EXPECT_FALSE(HoldApplies(h));
  h = Held();
  h.largest_domain_slots = 3;  // no domain could ever hold the whole gang: holding is pointless
  EXPECT_FALSE(HoldApplies(h));
  h = Held();
  h.unplaced = 0;
  EXPECT_FALSE(HoldApplies(h));
}

TEST(DomainHold, FirstTaskNeedsADomainWithRoomForTheWholeGang) {
  DomainHold h = Held();
  h.node_domain_slots = 4;
  EXPECT_EQ(DecideDomainHold(h).code, kPass);
  h.node_domain_slots = 3;
  const PredicateDecision d = DecideDomainHold(h);
  EXPECT_EQ(d.code, kUnschedulable);
  EXPECT_EQ(d.reason,
            "link-domain wait (100 s of 600 s): link domain ld-a has room for 3 of the gang's 4 tasks");
  h.node_domain.clear();
  h.node_domain_slots = 8;  // an unlabelled node is in no domain, whatever its room
  EXPECT_EQ(DecideDomainHold(h).reason, "link-domain wait (100 s of 600 s): node has no link domain");
  // Later tasks: the room asked for is what is left to place.
  h = Held();
  h.unplaced = 2;
  h.node_domain_slots = 2;
  EXPECT_EQ(DecideDomainHold(h).code, kPass);
}

TEST(DomainHold, LaterTasksFollowTheGangsDomain) {
  DomainHold h = Held();
  h.unplaced = 2;
  h.gang_domains = {"ld-b"};
  h.node_domain_slots = 8;  // room does not matter once the gang has a domain
  PredicateDecision d = DecideDomainHold(h);
  EXPECT_EQ(d.code, kUnschedulable);
  EXPECT_EQ(d.reason,
            "link-domain wait: the gang's other tasks are in link domain ld-b, this node is in ld-a");
  h.node_domain = "ld-b";
  h.node_domain_slots = 0;
  EXPECT_EQ(DecideDomainHold(h).code, kPass);
}

}  // namespace
}  // namespace hyperaccel::bridge
