// Worked examples and contract checks for placement (read them like the README pictures).
#include "hyperaccel/placement/placement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "graph_builder.h"

namespace hyperaccel::placement {
namespace {

using testing::AllBut;
using testing::Bits;
using testing::Cards;
using testing::Chain;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Ring;

// Ring of 8, cards 2 and 5 busy, k = 4:
//
//        0 --- 1 --- [2] --- 3
//        |                   |
//        7 --- 6 --- [5] --- 4
//
// Free arcs: 6-7-0-1 (4 cards) and 3-4 (2 cards). The only linked set of 4 is 6-7-0-1; taking it
// leaves the arc 3-4 free. Link order starts at the lower-index end of the path: 1, 0, 7, 6.
TEST(ChooseTest, RingOfEightTwoBusyTakesTheFourArc) {
  const CardGraph g = Ring(8);
  Result<Choice> c = Choose(g, Request{AllBut(g, {2, 5}), 0, 4});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cards, Bits({6, 7, 0, 1}));
  EXPECT_THAT(c->order, ElementsAre(1, 0, 7, 6));
  EXPECT_TRUE(c->score.connected);
  EXPECT_TRUE(c->score.ordered);
  EXPECT_FALSE(c->score.cycle);
  EXPECT_EQ(c->score.largest_free_after, 2);
  EXPECT_EQ(c->score.free_components_after, 1);
  EXPECT_TRUE(c->exact);
}

// Free ring of 8, k = 2: any two neighbours leave one 6-card arc; the tie goes to the lowest
// index set {0, 1}.
TEST(ChooseTest, TwoFromFreeRingLeavesSixArc) {
  const CardGraph g = Ring(8);
  Result<Choice> c = Choose(g, Request{g.AllMask(), 0, 2});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->cards, Bits({0, 1}));
  EXPECT_EQ(c->score.largest_free_after, 6);
  EXPECT_EQ(c->score.free_components_after, 1);
}

// Two NUMA nodes on one ring of 8 (cards 0-3 on node 0, 4-7 on node 1), everything free, k = 4:
// the arcs 0-1-2-3 and 4-5-6-7 stay on one NUMA node and leave the other half as a 4-arc; the
// tie goes to the lowest index set.
TEST(ChooseTest, PrefersOneNumaNode) {
  CardGraph g = Ring(8);
  for (int i = 4; i < 8; ++i) g.numa[i] = 1;
  Result<Choice> c = Choose(g, Request{g.AllMask(), 0, 4});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->cards, Bits({0, 1, 2, 3}));
  EXPECT_EQ(c->score.numa_nodes, 1);
  // With card 0 busy, 4-5-6-7 is the only single-node arc.
  c = Choose(g, Request{AllBut(g, {0}), 0, 4});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->cards, Bits({4, 5, 6, 7}));
}

// Ring of 8, cards 0 and 4 busy, must include 2 and 6, k = 4: the free arcs are 1-2-3 and 5-6-7,
// no linked set holds both must cards, so the answer has two parts. Every two-part answer leaves
// two single free cards (e.g. 1-2-3 + 6 leaves 5 and 7), so the index tie-break decides:
// {1,2,3,6} is the lexicographically smallest.
TEST(ChooseTest, MustIncludeCanForceTwoParts) {
  const CardGraph g = Ring(8);
  Result<Choice> c = Choose(g, Request{AllBut(g, {0, 4}), Bits({2, 6}), 4});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->score.components, 2);
  EXPECT_FALSE(c->score.connected);
  EXPECT_FALSE(c->score.ordered);
  EXPECT_EQ(c->cards, Bits({1, 2, 3, 6}));
  EXPECT_THAT(c->order, ElementsAre(1, 2, 3, 6));
  EXPECT_EQ(c->score.largest_free_after, 1);
  EXPECT_EQ(c->score.free_components_after, 2);
}

// Anti-fragmentation beats nothing else but decides among equals: chain 0-1-2-3-4-5 plus a
// separate pair 6-7, k = 2: the pair 6-7 fills its free set exactly and keeps the 6-chain whole.
TEST(ChooseTest, SnugSetKeepsLargeSetFree) {
  CardGraph g = Cards(8);
  Chain(g, 0, 6, false);
  Chain(g, 6, 2, false);
  Result<Choice> c = Choose(g, Request{g.AllMask(), 0, 2});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->cards, Bits({6, 7}));
  EXPECT_EQ(c->score.largest_free_after, 6);
}

TEST(ChooseTest, LargeRingUsesExactSearchWhenCheap) {
  const CardGraph g = Ring(64);
  Result<Choice> c = Choose(g, Request{AllBut(g, {10, 40}), 0, 20});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->score.connected);
  EXPECT_TRUE(c->exact);
  // Free arcs: 11..39 (29 cards) and 41..63,0..9 (33 cards). Best fit is the 29-arc, taken from
  // its end next to busy card 10 or 40; the lowest index set is 11..30.
  Mask want = 0;
  for (int i = 11; i <= 30; ++i) want |= Mask{1} << i;
  EXPECT_EQ(c->cards, want);
  EXPECT_EQ(c->score.largest_free_after, 33);
}

TEST(ChooseTest, DeterministicAcrossCalls) {
  const CardGraph g = Ring(16);
  const Request r{AllBut(g, {3, 9, 12}), Bits({5}), 5};
  Result<Choice> first = Choose(g, r);
  for (int i = 0; i < 5; ++i) {
    Result<Choice> again = Choose(g, r);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->cards, first->cards);
    EXPECT_EQ(again->order, first->order);
  }
}

TEST(ChooseTest, WholeRingIsACycle) {
  const CardGraph g = Ring(8);
  Result<Choice> c = Choose(g, Request{g.AllMask(), 0, 8});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->score.cycle);
  EXPECT_THAT(c->order, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
}

TEST(ChooseTest, ErrorsAreClear) {
  const CardGraph g = Ring(8);
  EXPECT_EQ(Choose(g, Request{g.AllMask(), 0, 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Choose(g, Request{Bits({0, 1}), 0, 3}).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Choose(g, Request{Bits({0, 1}), Bits({2}), 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Choose(g, Request{g.AllMask(), Bits({0, 1, 2}), 2}).status().code(),
            StatusCode::kInvalidArgument);
  const std::vector<std::string> avail = {"0000:10:00.1", "nope"};
  Result<std::vector<std::string>> ids = ChooseIds(g, avail, {}, 1);
  ASSERT_FALSE(ids.ok());
  EXPECT_THAT(ids.status().message(), HasSubstr("nope"));
}

// A graph built by hand is not limited to kMaxCards cards like GraphFromInventory's: the cards
// beyond have no mask bit and naming one is an error (it used to shift by 64 or more).
TEST(ChooseIdsTest, CardsBeyondTheMaskAreAnError) {
  const CardGraph g = Cards(kMaxCards + 2);
  EXPECT_EQ(g.HealthyMask(), ~Mask{0});
  const std::vector<std::string> last = {g.ids[kMaxCards - 1]};
  Result<Mask> m = g.MaskOf(last);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, Mask{1} << (kMaxCards - 1));
  const std::vector<std::string> beyond = {g.ids[0], g.ids[kMaxCards]};
  m = g.MaskOf(beyond);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr(g.ids[kMaxCards]));
  Result<std::vector<std::string>> ids = ChooseIds(g, beyond, {}, 1);
  ASSERT_FALSE(ids.ok());
  EXPECT_THAT(ids.status().message(), HasSubstr("at most 64"));
}

TEST(ChooseTest, UnhealthyCardsAreNeverChosen) {
  CardGraph g = Ring(8);
  g.healthy[0] = false;
  Result<Choice> c = Choose(g, Request{g.AllMask(), 0, 7});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->cards & Bits({0}), 0U);
  EXPECT_THAT(c->order, ElementsAre(1, 2, 3, 4, 5, 6, 7));
  EXPECT_FALSE(Choose(g, Request{g.AllMask(), 0, 8}).ok());
}

TEST(ChooseIdsTest, ReturnsLinkOrder) {
  const CardGraph g = Ring(8);
  std::vector<std::string> avail = g.IdsOf(AllBut(g, {2, 5}));
  Result<std::vector<std::string>> ids = ChooseIds(g, avail, {}, 4);
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(g.ids[1], g.ids[0], g.ids[7], g.ids[6]));
}

TEST(ScoreNodeTest, SpotPrefersFragmentedNodes) {
  const CardGraph g = Ring(8);
  const FitRequest spot{1, false, true};
  const NodeFit clean = ScoreNode(g, g.AllMask(), spot);
  const NodeFit fragmented = ScoreNode(g, Bits({0, 2, 4, 6}), spot);
  EXPECT_GT(fragmented.score, clean.score);
  EXPECT_EQ(fragmented.predicted, Bits({0}));
}

TEST(ScoreNodeTest, DoesNotFit) {
  const CardGraph g = Ring(8);
  const NodeFit fit = ScoreNode(g, Bits({0, 1}), FitRequest{3, false, false});
  EXPECT_FALSE(fit.fits);
  EXPECT_EQ(fit.score, 0);
  EXPECT_THAT(fit.reason, HasSubstr("needs 3"));
  CardGraph sick = Ring(8);
  sick.healthy[1] = false;
  EXPECT_FALSE(ScoreNode(sick, Bits({0, 1}), FitRequest{2, false, false}).fits);
}

TEST(ScoreNodeTest, PrefersSnugFit) {
  const CardGraph g = Ring(8);
  const NodeFit big = ScoreNode(g, g.AllMask(), FitRequest{4, true, false});
  const NodeFit snug = ScoreNode(g, Bits({0, 1, 2, 3}), FitRequest{4, true, false});
  EXPECT_TRUE(big.fits && big.fits_linked && snug.fits && snug.fits_linked);
  EXPECT_GT(snug.score, big.score);
  const NodeFit none = ScoreNode(g, Bits({0, 2, 4, 6}), FitRequest{4, true, false});
  EXPECT_TRUE(none.fits);
  EXPECT_FALSE(none.fits_linked);
  EXPECT_EQ(none.score, 0);
}

// A one-card pod keeps linked arcs whole: on a ring of 8 with cards 0, 3, 4, 5 free (card 0
// isolated, 3-4-5 an arc), the device plugin hands out the isolated card 0, which leaves the
// 3-arc free; cutting the arc instead would leave at most 2 linked cards. The bridge ranks such
// a node first: the pod exactly fills a free linked set (fill 1/1, 50 + 30 + 10 + 5 + 5 = 100)
// where a node whose free cards are one 4-arc is cut (fill 1/4: 50 + 8 + 10 + 5 + 5 = 78).
TEST(ScoreNodeTest, OneCardPodTakesAnIsolatedCard) {
  const CardGraph g = Ring(8);
  const Mask isolated_and_arc = Bits({0, 3, 4, 5});
  Result<Choice> c = Choose(g, Request{isolated_and_arc, 0, 1});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cards, Bits({0}));
  EXPECT_EQ(c->score.largest_free_after, 3);
  EXPECT_EQ(c->score.free_components_after, 1);
  const NodeFit keeps = ScoreNode(g, isolated_and_arc, FitRequest{1, false, false});
  const NodeFit cuts = ScoreNode(g, Bits({3, 4, 5, 6}), FitRequest{1, false, false});
  EXPECT_EQ(keeps.predicted, Bits({0}));
  EXPECT_EQ(keeps.score, 100);
  EXPECT_EQ(cuts.score, 78);
}

// Without an isolated card, a one-card pod takes an end of a free arc, so the rest of the arc
// stays one linked set: ring of 8 with cards 2-5 free, the pod gets card 2 or 5 and 3 linked cards
// stay free (a middle card would leave 1 + 2).
TEST(ScoreNodeTest, OneCardPodTakesTheEndOfAnArc) {
  const CardGraph g = Ring(8);
  const Mask arc = Bits({2, 3, 4, 5});
  Result<Choice> c = Choose(g, Request{arc, 0, 1});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->cards == Bits({2}) || c->cards == Bits({5})) << c->cards;
  EXPECT_EQ(c->score.largest_free_after, 3);
  EXPECT_EQ(c->score.free_components_after, 1);
  EXPECT_EQ(ScoreNode(g, arc, FitRequest{1, false, false}).predicted, c->cards);
}

TEST(FragmentationTest, StrandedSingles) {
  const CardGraph g = Ring(8);
  const Fragmentation f = NodeFragmentation(g, Bits({0, 2, 4, 5}));
  EXPECT_EQ(f.free_cards, 4);
  EXPECT_EQ(f.largest_free_linked, 2);
  EXPECT_EQ(f.stranded_cards, 2);
  EXPECT_DOUBLE_EQ(f.score, 0.5);
}

TEST(FragmentationTest, CombinesNodes) {
  const CardGraph g = Ring(8);
  const Fragmentation nodes[] = {NodeFragmentation(g, Bits({0, 2, 4, 5})), NodeFragmentation(g, g.AllMask())};
  const Fragmentation total = CombineFragmentation(nodes);
  EXPECT_EQ(total.free_cards, 12);
  EXPECT_EQ(total.stranded_cards, 2);
  EXPECT_EQ(total.largest_free_linked, 8);
  EXPECT_DOUBLE_EQ(total.score, 2.0 / 12.0);
  const int sizes[] = {4};
  EXPECT_EQ(NodeFragmentation(g, Bits({0, 2, 4, 5}), sizes).stranded_cards, 4);
}

// ---- GraphFromInventory -------------------------------------------------------------------------

hw::Card MakeCard(const std::string& id, const std::string& serial, int numa, std::vector<std::string> path) {
  hw::Card c;
  c.id = id;
  c.serial = serial;
  c.numa_node = numa;
  c.pcie_path = std::move(path);
  return c;
}

hw::Link MakeLink(const std::string& a, const std::string& b, hw::LinkState state,
                  const std::string& node_b = "") {
  hw::Link l;
  l.a = {"", a, 0};
  l.b = {node_b, b, 1};
  l.state = state;
  return l;
}

TEST(GraphFromInventoryTest, LinksSwitchesAndHealth) {
  hw::Inventory inv;
  inv.node_name = "node-a";
  // Listed out of order on purpose: the graph sorts by ID.
  inv.cards.push_back(MakeCard("0000:3c:00.1", "S1", 0, {"pci0000:3a", "0000:3a:00.0", "0000:3b:00.0"}));
  inv.cards.push_back(MakeCard("0000:1b:00.1", "S0", 0, {"pci0000:3a", "0000:3a:00.0", "0000:3b:00.0"}));
  inv.cards.push_back(MakeCard("0000:af:00.1", "S2", 1, {"pci0000:ae", "0000:ae:00.0"}));
  inv.cards.push_back(MakeCard("0000:d8:00.1", "S3", 1, {"pci0000:d7", "0000:d7:00.0", "0000:d8:00.0"}));
  inv.cards.back().numa_node.reset();
  inv.cards.back().health = hw::Health::kUnhealthy;
  inv.links.push_back(MakeLink("S0", "S1", hw::LinkState::kUp));
  inv.links.push_back(MakeLink("S1", "S2", hw::LinkState::kDown));
  inv.links.push_back(MakeLink("S2", "S3", hw::LinkState::kUp, "node-a"));
  inv.links.push_back(MakeLink("S3", "S0", hw::LinkState::kUp, "node-b"));  // another node's port
  inv.links.push_back(MakeLink("S3", "S9", hw::LinkState::kUp));            // unknown serial
  Result<CardGraph> g = GraphFromInventory(inv);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_THAT(g->ids, ElementsAre("0000:1b:00.1", "0000:3c:00.1", "0000:af:00.1", "0000:d8:00.1"));
  EXPECT_THAT(g->serials, ElementsAre("S0", "S1", "S2", "S3"));
  EXPECT_THAT(g->numa, ElementsAre(0, 0, 1, -1));
  EXPECT_THAT(g->pcie_switch, ElementsAre(0, 0, -1, 1));
  EXPECT_THAT(g->healthy, ElementsAre(true, true, true, false));
  EXPECT_THAT(g->adj, ElementsAre(Bits({1}), Bits({0}), Bits({3}), Bits({2})));
  EXPECT_EQ(g->IndexOf("0000:af:00.1"), 2);
  EXPECT_FALSE(g->IndexOf("0000:00:00.0").has_value());
}

TEST(GraphFromInventoryTest, RejectsDuplicatesAndTooManyCards) {
  hw::Inventory inv;
  inv.cards.push_back(MakeCard("0000:01:00.1", "S", 0, {}));
  inv.cards.push_back(MakeCard("0000:02:00.1", "S", 0, {}));
  EXPECT_FALSE(GraphFromInventory(inv).ok());
  inv.cards.clear();
  for (int i = 0; i < 65; ++i) inv.cards.push_back(MakeCard("id" + std::to_string(100 + i), "", 0, {}));
  EXPECT_EQ(GraphFromInventory(inv).status().code(), StatusCode::kInvalidArgument);
}

TEST(LinkOrderTest, MeshPrefersCycle) {
  // 0-1-2-3 chain with chords 0-2 and 1-3 closes into the ring 0-1-3-2.
  CardGraph g = Cards(4);
  Chain(g, 0, 4, false);
  testing::Link(g, 0, 2);
  testing::Link(g, 1, 3);
  EXPECT_THAT(LinkOrder(g, g.AllMask()), ElementsAre(0, 1, 3, 2));
  const Score s = Evaluate(g, g.AllMask(), g.AllMask());
  EXPECT_TRUE(s.cycle);
  EXPECT_EQ(CompareScores(s, s), 0);
  EXPECT_LT(CompareScores(s, Evaluate(g, g.AllMask(), Bits({0, 3}))), 0);
}

TEST(FormatTest, TableAndJson) {
  const CardGraph g = Ring(8);
  const Request r{AllBut(g, {2, 5}), 0, 4};
  const Result<Choice> c = Choose(g, r);
  const std::string table = FormatPlanTable(g, r, c);
  EXPECT_THAT(table, HasSubstr("SN6"));
  const std::string json = FormatPlanJson(g, r, c);
  EXPECT_THAT(json, HasSubstr("\"largest_free_after\":2"));
  const Request bad{g.AllMask(), 0, 9};
  const Result<Choice> err = Choose(g, bad);
  EXPECT_THAT(FormatPlanTable(g, bad, err), HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT(FormatPlanJson(g, bad, err), HasSubstr("\"ok\":false"));
}

}  // namespace
}  // namespace hyperaccel::placement
