// Link domains and linked arcs (what the DRA driver publishes and `plan` explains).
#include <gtest/gtest.h>

#include "graph_builder.h"
#include "hyperaccel/placement/placement.h"

namespace hyperaccel::placement {
namespace {

using testing::Cards;
using testing::Chain;
using testing::Link;

std::vector<std::pair<int, int>> SizesStarts(const std::vector<Arc>& arcs) {
  std::vector<std::pair<int, int>> out;
  out.reserve(arcs.size());
  for (const auto& a : arcs) out.emplace_back(a.size, a.start);
  return out;
}

TEST(ArcsTest, DomainsInOrderOfLowestCard) {
  CardGraph g = Cards(7);
  Chain(g, 0, 4, true);
  Chain(g, 4, 2, false);  // card 6 alone
  auto d = LinkDomains(g);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].order, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_TRUE(d[0].ring);
  EXPECT_EQ(d[1].order, (std::vector<int>{4, 5}));
  EXPECT_FALSE(d[1].ring);
  EXPECT_EQ(d[2].order, std::vector<int>{6});
}

TEST(ArcsTest, RingAllWrapsAlignedDoesNot) {
  CardGraph g = Cards(8);
  Chain(g, 0, 8, true);
  const std::vector<int> sizes{2, 4, 8};
  auto all = LinkedArcs(g, sizes, ArcAlignment::kAll);
  EXPECT_EQ(all.size(), 8u + 8u + 1u);
  // arc of 4 starting at position 6 wraps: 6, 7, 0, 1.
  bool found = false;
  for (const auto& a : all) {
    if (a.size == 4 && a.start == 6) {
      EXPECT_EQ(a.cards, (std::vector<int>{6, 7, 0, 1}));
      found = true;
    }
  }
  EXPECT_TRUE(found);
  auto aligned = LinkedArcs(g, sizes, ArcAlignment::kAligned);
  EXPECT_EQ(SizesStarts(aligned),
            (std::vector<std::pair<int, int>>{{2, 0}, {2, 2}, {2, 4}, {2, 6}, {4, 0}, {4, 4}, {8, 0}}));
}

TEST(ArcsTest, ChainHasNoWrapAndSkipsTooLargeSizes) {
  CardGraph g = Cards(5);
  Chain(g, 0, 5, false);
  auto all = LinkedArcs(g, std::vector<int>{2, 4, 8}, ArcAlignment::kAll);
  EXPECT_EQ(SizesStarts(all),
            (std::vector<std::pair<int, int>>{{2, 0}, {2, 1}, {2, 2}, {2, 3}, {4, 0}, {4, 1}}));
}

TEST(ArcsTest, UnlinkedRunsAreNotArcs) {
  // A star: 0 linked to 1, 2, 3. No Hamiltonian path, so only the linked pairs of the walk count.
  CardGraph g = Cards(4);
  Link(g, 0, 1);
  Link(g, 0, 2);
  Link(g, 0, 3);
  for (const auto& a : LinkedArcs(g, std::vector<int>{2, 3, 4}, ArcAlignment::kAll)) {
    for (size_t i = 1; i < a.cards.size(); ++i) {
      EXPECT_TRUE(g.adj[static_cast<size_t>(a.cards[i - 1])] & (Mask{1} << a.cards[i]));
    }
    EXPECT_LT(a.size, 4);
  }
}

TEST(ArcsTest, FirstFitTakesTheFirstFreeArc) {
  CardGraph g = Cards(8);
  Chain(g, 0, 8, true);
  auto arcs = LinkedArcs(g, std::vector<int>{2, 4}, ArcAlignment::kAligned);
  auto a = FirstFitArc(arcs, g.AllMask(), 4);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->start, 0);
  a = FirstFitArc(arcs, g.AllMask() & ~Mask{0b10}, 4);  // card 1 busy
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->start, 4);
  EXPECT_FALSE(FirstFitArc(arcs, 0b1111, 8).has_value());
}

}  // namespace
}  // namespace hyperaccel::placement
