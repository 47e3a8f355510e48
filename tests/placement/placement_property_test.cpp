// Property tests: Choose() against a brute-force reference on random graphs of up to 12 cards.
//
// The reference below shares no code with the implementation: it enumerates every k-subset of the
// available healthy cards that contains the must-include cards, scores each one from scratch with
// plain vectors (breadth-first search, backtracking for walks) and keeps the best by the
// documented objective and tie-break.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "graph_builder.h"
#include "hyperaccel/placement/placement.h"

namespace hyperaccel::placement {
namespace {

using testing::Cards;
using testing::Chain;
using testing::Link;

using Cardset = std::vector<int>;  // ascending card indices

bool Linked(const CardGraph& g, int a, int b) { return ((g.adj[a] >> b) & 1U) != 0; }

// Connected parts of `cards`; sizes only.
std::vector<int> PartSizes(const CardGraph& g, const Cardset& cards) {
  std::vector<int> sizes;
  std::set<int> left(cards.begin(), cards.end());
  while (!left.empty()) {
    std::vector<int> queue{*left.begin()};
    left.erase(left.begin());
    for (size_t q = 0; q < queue.size(); ++q) {
      for (auto it = left.begin(); it != left.end();) {
        if (Linked(g, queue[q], *it)) {
          queue.push_back(*it);
          it = left.erase(it);
        } else {
          ++it;
        }
      }
    }
    sizes.push_back(static_cast<int>(queue.size()));
  }
  return sizes;
}

// Backtracking walk search: does a path (or, with `cycle`, a closed ring of >= 3) visit all cards?
bool Walks(const CardGraph& g, const Cardset& cards, int at, std::vector<bool>& used, int placed, int start,
           bool cycle) {
  if (placed == static_cast<int>(cards.size())) return !cycle || Linked(g, cards[at], cards[start]);
  for (size_t j = 0; j < cards.size(); ++j) {
    if (used[j] || !Linked(g, cards[at], cards[j])) continue;
    used[j] = true;
    if (Walks(g, cards, static_cast<int>(j), used, placed + 1, start, cycle)) return true;
    used[j] = false;
  }
  return false;
}

bool HasWalk(const CardGraph& g, const Cardset& cards, bool cycle) {
  if (cycle && cards.size() < 3) return false;
  if (cards.size() == 1) return true;
  for (size_t s = 0; s < cards.size(); ++s) {
    std::vector<bool> used(cards.size(), false);
    used[s] = true;
    if (Walks(g, cards, static_cast<int>(s), used, 1, static_cast<int>(s), cycle)) return true;
    if (cycle) return false;  // a ring can start anywhere
  }
  return false;
}

// The documented objective, as a tuple where larger is better.
using Value = std::tuple<int, bool, int, int, int, int, bool>;

Value Objective(const CardGraph& g, const Cardset& chosen, const Cardset& available) {
  const int components = static_cast<int>(PartSizes(g, chosen).size());
  const bool ordered = components == 1 && HasWalk(g, chosen, false);
  const bool cycle = components == 1 && HasWalk(g, chosen, true);
  std::set<int> numa;
  std::set<int> switches;
  int lone = 0;
  for (int c : chosen) {
    numa.insert(g.numa[c]);
    if (g.pcie_switch[c] < 0) {
      ++lone;
    } else {
      switches.insert(g.pcie_switch[c]);
    }
  }
  Cardset left;
  for (int a : available) {
    if (!std::binary_search(chosen.begin(), chosen.end(), a)) left.push_back(a);
  }
  const std::vector<int> free_parts = PartSizes(g, left);
  const int largest = free_parts.empty() ? 0 : *std::max_element(free_parts.begin(), free_parts.end());
  return {-components,
          ordered,
          -static_cast<int>(numa.size()),
          -(static_cast<int>(switches.size()) + lone),
          largest,
          -static_cast<int>(free_parts.size()),
          cycle};
}

struct Reference {
  Cardset best;
  Value value;
};

Reference BruteForce(const CardGraph& g, const Request& r) {
  Cardset available;
  for (int i = 0; i < g.size(); ++i) {
    if (((r.available >> i) & 1U) != 0 && g.healthy[i]) available.push_back(i);
  }
  Reference ref;
  bool have = false;
  const int n = static_cast<int>(available.size());
  std::vector<bool> pick(n, false);
  std::fill(pick.begin(), pick.begin() + r.size, true);  // first combination in lexicographic order
  do {
    Cardset chosen;
    for (int i = 0; i < n; ++i) {
      if (pick[i]) chosen.push_back(available[i]);
    }
    bool has_must = true;
    for (int i = 0; i < g.size(); ++i) {
      if (((r.must_include >> i) & 1U) != 0 && !std::binary_search(chosen.begin(), chosen.end(), i))
        has_must = false;
    }
    if (!has_must) continue;
    const Value v = Objective(g, chosen, available);
    // Strictly better value wins; equal values keep the lexicographically smaller index list,
    // which is the one seen first in this enumeration order.
    if (!have || v > ref.value) {
      ref = {chosen, v};
      have = true;
    }
  } while (std::prev_permutation(pick.begin(), pick.end()));
  return ref;
}

Cardset Indices(Mask m) {
  Cardset out;
  for (int i = 0; i < 64; ++i) {
    if (((m >> i) & 1U) != 0) out.push_back(i);
  }
  return out;
}

// ---- random graphs ------------------------------------------------------------------------------

enum class Shape { kRing, kChain, kTwoRings, kBrokenRing, kMesh, kTwoNodesRing };

CardGraph RandomGraph(std::mt19937& rng, Shape shape, int n) {
  CardGraph g = Cards(n);
  auto coin = [&](double p) { return std::bernoulli_distribution(p)(rng); };
  switch (shape) {
    case Shape::kRing: Chain(g, 0, n, true); break;
    case Shape::kChain: Chain(g, 0, n, false); break;
    case Shape::kTwoRings: {
      const int first = std::uniform_int_distribution<int>(2, n - 2)(rng);
      Chain(g, 0, first, true);
      Chain(g, first, n - first, true);
      break;
    }
    case Shape::kBrokenRing:
      for (int i = 0; i < n; ++i) {
        if (!coin(0.25)) Link(g, i, (i + 1) % n);
      }
      break;
    case Shape::kMesh:
      Chain(g, 0, n, coin(0.5));
      for (int extra = std::uniform_int_distribution<int>(1, n)(rng); extra > 0; --extra) {
        const int a = std::uniform_int_distribution<int>(0, n - 1)(rng);
        const int b = std::uniform_int_distribution<int>(0, n - 1)(rng);
        if (a != b) Link(g, a, b);
      }
      break;
    case Shape::kTwoNodesRing: {  // a ring whose card order is shuffled against the indices
      std::vector<int> perm(n);
      for (int i = 0; i < n; ++i) perm[i] = i;
      std::shuffle(perm.begin(), perm.end(), rng);
      for (int i = 0; i < n; ++i) Link(g, perm[i], perm[(i + 1) % n]);
      break;
    }
  }
  const int numa_nodes = std::uniform_int_distribution<int>(1, 3)(rng);
  const int switch_groups = std::uniform_int_distribution<int>(0, 4)(rng);
  const bool contiguous = coin(0.5);
  for (int i = 0; i < n; ++i) {
    g.numa[i] = contiguous ? i * numa_nodes / n : std::uniform_int_distribution<int>(0, numa_nodes - 1)(rng);
    if (numa_nodes == 1 && coin(0.2)) g.numa[i] = -1;
    g.pcie_switch[i] =
        switch_groups == 0 ? -1 : std::uniform_int_distribution<int>(-1, switch_groups - 1)(rng);
    g.healthy[i] = !coin(0.1);
  }
  return g;
}

struct Case {
  CardGraph graph;
  Request request;
};

// A random request that can be met: enough healthy available cards, must-include within them.
Case RandomCase(std::mt19937& rng, Shape shape) {
  while (true) {
    const int n = std::uniform_int_distribution<int>(shape == Shape::kTwoRings ? 4 : 3, 12)(rng);
    Case c{RandomGraph(rng, shape, n), {}};
    const double busy = std::uniform_real_distribution<double>(0.0, 0.5)(rng);
    std::vector<int> usable;
    for (int i = 0; i < n; ++i) {
      if (!std::bernoulli_distribution(busy)(rng)) {
        c.request.available |= Mask{1} << i;
        if (c.graph.healthy[i]) usable.push_back(i);
      }
    }
    if (usable.empty()) continue;
    c.request.size = std::uniform_int_distribution<int>(1, static_cast<int>(usable.size()))(rng);
    const int musts = std::uniform_int_distribution<int>(0, std::min(2, c.request.size))(rng);
    std::shuffle(usable.begin(), usable.end(), rng);
    for (int i = 0; i < musts; ++i) c.request.must_include |= Mask{1} << usable[i];
    return c;
  }
}

std::string Describe(const Case& c) {
  // Appends only: GCC 12 warns falsely (-Wrestrict) on `"literal" + std::string` at -O3.
  std::string out = "n=";
  out += std::to_string(c.graph.size());
  out += " k=";
  out += std::to_string(c.request.size);
  out += " available=";
  out += std::to_string(c.request.available);
  out += " must=";
  out += std::to_string(c.request.must_include);
  out += " links:";
  for (int i = 0; i < c.graph.size(); ++i) {
    for (int j = i + 1; j < c.graph.size(); ++j) {
      if (!Linked(c.graph, i, j)) continue;
      out += ' ';
      out += std::to_string(i);
      out += '-';
      out += std::to_string(j);
    }
  }
  out += " unhealthy:";
  for (int i = 0; i < c.graph.size(); ++i) {
    if (c.graph.healthy[i]) continue;
    out += ' ';
    out += std::to_string(i);
  }
  return out;
}

void ExpectValidWalk(const CardGraph& g, const Choice& c) {
  ASSERT_EQ(c.order.size(), Indices(c.cards).size());
  Cardset sorted = c.order;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, Indices(c.cards));
  if (c.score.ordered) {
    for (size_t i = 0; i + 1 < c.order.size(); ++i) {
      EXPECT_TRUE(Linked(g, c.order[i], c.order[i + 1]));
    }
  }
  if (c.score.cycle) {
    EXPECT_TRUE(Linked(g, c.order.back(), c.order.front()));
  }
}

std::string ShapeName(const ::testing::TestParamInfo<Shape>& param) {
  static const char* const kNames[] = {"Ring", "Chain", "TwoRings", "BrokenRing", "Mesh", "ShuffledRing"};
  return kNames[static_cast<int>(param.param)];
}

class PropertyTest : public ::testing::TestWithParam<Shape> {};

TEST_P(PropertyTest, MatchesBruteForce) {
  std::mt19937 rng(20240611U + static_cast<unsigned>(GetParam()));
  for (int round = 0; round < 400; ++round) {
    const Case c = RandomCase(rng, GetParam());
    SCOPED_TRACE(Describe(c));
    const Result<Choice> got = Choose(c.graph, c.request);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    const Reference ref = BruteForce(c.graph, c.request);
    Cardset available;
    for (int i = 0; i < c.graph.size(); ++i) {
      if (((c.request.available >> i) & 1U) != 0 && c.graph.healthy[i]) available.push_back(i);
    }
    const Cardset chosen = Indices(got->cards);
    // Same objective value, the same set (ties broken by the documented rule), and the score the
    // implementation reports is the score of the set it returned.
    EXPECT_EQ(Objective(c.graph, chosen, available), ref.value);
    EXPECT_EQ(chosen, ref.best);
    const Score& s = got->score;
    EXPECT_EQ(Objective(c.graph, chosen, available),
              Value(-s.components, s.ordered, -s.numa_nodes, -s.pcie_switches, s.largest_free_after,
                    -s.free_components_after, s.cycle));
    EXPECT_TRUE(got->exact);
    ExpectValidWalk(c.graph, *got);

    // The heuristic always returns a valid answer (its quality is measured by the gap bench).
    const Result<Choice> heuristic = ChooseWith(c.graph, c.request, Method::kHeuristic);
    ASSERT_TRUE(heuristic.ok());
    EXPECT_EQ(Indices(heuristic->cards).size(), static_cast<size_t>(c.request.size));
    EXPECT_EQ(heuristic->cards & c.request.must_include, c.request.must_include);
    EXPECT_EQ(heuristic->cards & ~(c.request.available & c.graph.HealthyMask()), 0U);
    ExpectValidWalk(c.graph, *heuristic);
    if (HasFailure()) return;
  }
}

// Above 16 cards Choose() says whether its answer is proven optimal; when it says so, exhaustive
// search agrees, and the answer is always a valid one.
TEST(LargeGraphTest, ExactFlagIsHonest) {
  std::mt19937 rng(77);
  int exact_answers = 0;
  for (int round = 0; round < 60; ++round) {
    const Shape shape =
        round % 3 == 0 ? Shape::kRing : (round % 3 == 1 ? Shape::kBrokenRing : Shape::kTwoRings);
    const int n = std::uniform_int_distribution<int>(17, 26)(rng);
    CardGraph g = RandomGraph(rng, shape, n);
    Request r;
    r.available = g.AllMask();
    for (int i = 0; i < n; ++i) {
      if (std::bernoulli_distribution(0.25)(rng)) r.available &= ~(Mask{1} << i);
    }
    const int usable = std::popcount(r.available & g.HealthyMask());
    if (usable == 0) continue;
    r.size = std::uniform_int_distribution<int>(1, std::max(1, usable / 2))(rng);
    const Result<Choice> fast = Choose(g, r);
    const Result<Choice> slow = ChooseWith(g, r, Method::kExact);
    ASSERT_TRUE(fast.ok() && slow.ok());
    ASSERT_TRUE(slow->exact);
    ExpectValidWalk(g, *fast);
    if (fast->exact) {
      ++exact_answers;
      EXPECT_EQ(CompareScores(fast->score, slow->score), 0)
          << fast->score.explanation << " vs " << slow->score.explanation;
      EXPECT_EQ(fast->cards, slow->cards);
    } else {
      EXPECT_GE(CompareScores(fast->score, slow->score), 0);
    }
  }
  EXPECT_GT(exact_answers, 30);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PropertyTest,
                         ::testing::Values(Shape::kRing, Shape::kChain, Shape::kTwoRings, Shape::kBrokenRing,
                                           Shape::kMesh, Shape::kTwoNodesRing),
                         ShapeName);

}  // namespace
}  // namespace hyperaccel::placement
