// The objective: components, Hamiltonian walks, locality and what stays free; link order.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "internal.h"

namespace hyperaccel::placement {
namespace internal {
namespace {

// Steps the bounded depth-first walk searches of one FindWalk/OrderPart call may take in total.
constexpr long kWalkSearchSteps = 4096;

// Depth-first search for a Hamiltonian path or cycle through `set`, trying neighbours in ascending
// index order, so the first walk found is the lexicographically smallest one from `start`.
class WalkSearch {
 public:
  // `budget` is shared by every search of one caller and counts down.
  WalkSearch(const std::array<Mask, kMaxCards>& adj, Mask set, long* budget)
      : adj_(adj), set_(set), budget_(*budget) {}

  // Fills `out` with the walk when found. `close` asks for a cycle back to `start`.
  bool From(int start, bool close, std::vector<int>* out) {
    start_ = start;
    close_ = close;
    path_.clear();
    path_.push_back(start);
    const bool found = Extend(start, Bit(start));
    if (found && out != nullptr) *out = path_;
    return found;
  }
  bool gave_up() const { return gave_up_; }

 private:
  bool Extend(int v, Mask visited) {
    if (visited == set_) return !close_ || (adj_[v] & Bit(start_)) != 0;
    if (--budget_ < 0) {
      budget_ = 0;
      gave_up_ = true;
      return false;
    }
    Mask next = adj_[v] & set_ & ~visited;
    while (next != 0) {
      const int u = Low(next);
      next &= next - 1;
      path_.push_back(u);
      if (Extend(u, visited | Bit(u))) return true;
      path_.pop_back();
      if (gave_up_) return false;
    }
    return false;
  }

  const std::array<Mask, kMaxCards>& adj_;
  Mask set_;
  long& budget_;
  bool gave_up_ = false;
  int start_ = 0;
  bool close_ = false;
  std::vector<int> path_;
};

// Dynamic programming over the subsets of a set of at most kExactCards cards (local labels in
// ascending index order). path[R]: cards of R where a Hamiltonian path of R can start.
// tail[R] (R without local card 0): cards of R where a Hamiltonian path of R can start and end
// next to local card 0, i.e. the rest of a Hamiltonian cycle through card 0.
struct WalkTables {
  std::vector<int> cards;  // local label -> index
  std::vector<uint32_t> local_adj;
  std::vector<uint16_t> path;
  std::vector<uint16_t> tail;
  uint32_t full = 0;

  WalkTables(const std::array<Mask, kMaxCards>& adj, Mask set) {
    ForEachBit(set, [&](int v) { cards.push_back(v); });
    const int k = static_cast<int>(cards.size());
    local_adj.assign(k, 0);
    for (int i = 0; i < k; ++i) {
      for (int j = 0; j < k; ++j) {
        if ((adj[cards[i]] & Bit(cards[j])) != 0) local_adj[i] |= 1U << j;
      }
    }
    full = (1U << k) - 1;
    path.assign(full + 1, 0);
    tail.assign(full + 1, 0);
    for (uint32_t r = 1; r <= full; ++r) {
      uint32_t p = 0;
      uint32_t t = 0;
      const bool without_zero = (r & 1U) == 0;
      for (uint32_t bits = r; bits != 0; bits &= bits - 1) {
        const int i = std::countr_zero(bits);
        const uint32_t rest = r & ~(1U << i);
        if (rest == 0) {
          p |= 1U << i;
          if (without_zero && (local_adj[i] & 1U) != 0) t |= 1U << i;
        } else {
          if ((local_adj[i] & path[rest]) != 0) p |= 1U << i;
          if (without_zero && (local_adj[i] & tail[rest]) != 0) t |= 1U << i;
        }
      }
      path[r] = static_cast<uint16_t>(p);
      tail[r] = static_cast<uint16_t>(t);
    }
  }
  int size() const { return static_cast<int>(cards.size()); }
  bool HasPath() const { return path[full] != 0; }
  bool HasCycle() const { return size() >= 3 && (local_adj[0] & tail[full & ~1U]) != 0; }

  std::vector<int> SmallestCycle() const {
    std::vector<int> out{cards[0]};
    uint32_t rest = full & ~1U;
    int cur = 0;
    while (rest != 0) {
      const uint32_t options = local_adj[cur] & tail[rest];
      cur = std::countr_zero(options);
      rest &= ~(1U << cur);
      out.push_back(cards[cur]);
    }
    return out;
  }
  std::vector<int> SmallestPath() const {
    int cur = std::countr_zero(static_cast<uint32_t>(path[full]));
    std::vector<int> out{cards[cur]};
    uint32_t rest = full & ~(1U << cur);
    while (rest != 0) {
      cur = std::countr_zero(local_adj[cur] & path[rest]);
      rest &= ~(1U << cur);
      out.push_back(cards[cur]);
    }
    return out;
  }
};

struct Degrees {
  int max = 0;
  int ends = 0;  // cards with exactly one neighbour in the set
  int isolated = 0;
};

Degrees DegreesIn(const std::array<Mask, kMaxCards>& adj, Mask set) {
  Degrees d;
  ForEachBit(set, [&](int v) {
    const int deg = Count(adj[v] & set);
    d.max = std::max(d.max, deg);
    if (deg == 1) ++d.ends;
    if (deg == 0) ++d.isolated;
  });
  return d;
}

// Walk through a set of maximum degree two that is connected: a path (from its lower end) or a
// cycle (from its lowest card, towards the lower neighbour). Both are the lexicographically
// smallest walks of their kind.
std::vector<int> SimpleWalk(const std::array<Mask, kMaxCards>& adj, Mask set) {
  int start = Low(set);
  Mask ends = 0;
  ForEachBit(set, [&](int v) {
    if (Count(adj[v] & set) <= 1) ends |= Bit(v);
  });
  if (ends != 0) start = Low(ends);
  std::vector<int> out{start};
  Mask visited = Bit(start);
  int cur = start;
  while (true) {
    const Mask next = adj[cur] & set & ~visited;
    if (next == 0) break;
    cur = Low(next);
    visited |= Bit(cur);
    out.push_back(cur);
  }
  return out;
}

void Preorder(const std::array<Mask, kMaxCards>& adj, Mask set, int v, Mask* visited, std::vector<int>* out) {
  *visited |= Bit(v);
  out->push_back(v);
  Mask next = adj[v] & set & ~*visited;
  while (next != 0) {
    const int u = Low(next);
    Preorder(adj, set, u, visited, out);
    next = adj[v] & set & ~*visited;
  }
}

// One connected part in link order (see LinkOrder).
std::vector<int> OrderPart(const std::array<Mask, kMaxCards>& adj, Mask part) {
  const int k = Count(part);
  if (k <= 2) return SimpleWalk(adj, part);
  const Degrees d = DegreesIn(adj, part);
  if (d.max <= 2) return SimpleWalk(adj, part);
  // Depth-first search in ascending order finds the lexicographically smallest walk first; when
  // it gives up, small sets fall back to the subset tables, which give the same answer.
  std::vector<int> out;
  bool gave_up = false;
  if (d.ends == 0) {
    long budget = kWalkSearchSteps;
    WalkSearch cycle(adj, part, &budget);
    if (cycle.From(Low(part), true, &out)) return out;
    gave_up = cycle.gave_up();
  }
  if ((!gave_up || k > kExactCards) && d.ends <= 2) {
    long budget = kWalkSearchSteps;
    for (Mask starts = part; starts != 0; starts &= starts - 1) {
      const int s = Low(starts);
      if (d.ends > 0 && Count(adj[s] & part) != 1) continue;
      WalkSearch path(adj, part, &budget);
      if (path.From(s, false, &out)) return out;
      if (path.gave_up()) {
        gave_up = true;
        break;
      }
    }
  }
  if (gave_up && k <= kExactCards) {
    const WalkTables tables(adj, part);
    if (tables.HasCycle()) return tables.SmallestCycle();
    if (tables.HasPath()) return tables.SmallestPath();
  }
  out.clear();
  Mask visited = 0;
  Preorder(adj, part, Low(part), &visited, &out);
  return out;
}

}  // namespace

Context MakeContext(const CardGraph& graph, Mask available) {
  Context ctx;
  ctx.n = graph.size();
  ctx.available = available & graph.HealthyMask();
  for (int i = 0; i < ctx.n; ++i) ctx.adj[i] = graph.adj[i] & graph.AllMask() & ~Bit(i);
  std::map<int, Mask> numa;
  std::map<int, Mask> switches;
  for (int i = 0; i < ctx.n; ++i) {
    numa[graph.numa[i]] |= Bit(i);
    if (graph.pcie_switch[i] >= 0) {
      switches[graph.pcie_switch[i]] |= Bit(i);
    } else {
      ctx.no_switch |= Bit(i);
    }
  }
  for (const auto& [value, mask] : numa) ctx.numa_groups.push_back(mask);
  for (const auto& [value, mask] : switches) ctx.switch_groups.push_back(mask);
  return ctx;
}

int Components(const Context& ctx, Mask set, int* largest) {
  int parts = 0;
  int biggest = 0;
  while (set != 0) {
    const Mask seen = LowestPart(ctx.adj, set);
    set &= ~seen;
    ++parts;
    biggest = std::max(biggest, Count(seen));
  }
  if (largest != nullptr) *largest = biggest;
  return parts;
}

Walk FindWalk(const std::array<Mask, kMaxCards>& adj, Mask set, WalkEffort effort) {
  const int k = Count(set);
  if (k == 0) return {};
  if (k == 1) return {true, false, false};
  const Degrees d = DegreesIn(adj, set);
  if (d.isolated > 0) return {};
  if (d.max <= 2) return {true, k >= 3 && d.ends == 0, false};
  if (d.ends > 2) return {};
  Walk walk;
  bool undecided = false;
  long cycle_budget = effort.steps / 2;
  long budget = effort.steps;
  {
    // Cycle first: a cycle is also a path.
    if (d.ends == 0) {
      WalkSearch cycle(adj, set, &cycle_budget);
      if (cycle.From(Low(set), true, nullptr)) return {true, true, false};
      undecided = cycle.gave_up();
    }
    for (Mask starts = set; starts != 0 && !walk.path; starts &= starts - 1) {
      const int s = Low(starts);
      if (d.ends > 0 && Count(adj[s] & set) != 1) continue;
      WalkSearch path(adj, set, &budget);
      walk.path = path.From(s, false, nullptr);
      if (path.gave_up()) {
        undecided = true;
        break;
      }
    }
    if (!undecided) return walk;  // both searches ran to the end
  }
  if (k <= kExactCards && effort.subset_dp) {
    const WalkTables tables(adj, set);
    return {tables.HasPath(), tables.HasCycle(), false};
  }
  walk.undecided = true;
  return walk;
}

int NumaCount(const Context& ctx, Mask set) {
  int count = 0;
  for (Mask g : ctx.numa_groups) count += (g & set) != 0 ? 1 : 0;
  return count;
}

int SwitchCount(const Context& ctx, Mask set) {
  int count = Count(set & ctx.no_switch);
  for (Mask g : ctx.switch_groups) count += (g & set) != 0 ? 1 : 0;
  return count;
}

Key PackKey(const Score& s) {
  return PackKey(s.components, s.ordered, s.numa_nodes, s.pcie_switches, s.largest_free_after,
                 s.free_components_after, s.cycle);
}

Score ScoreOf(const Context& ctx, Mask set) {
  Score s;
  s.components = Components(ctx, set, nullptr);
  s.connected = s.components == 1;
  if (s.connected) {
    const Walk walk = FindWalk(ctx.adj, set, ctx.walk_effort);
    s.ordered = walk.path;
    s.cycle = walk.cycle;
  }
  s.numa_nodes = NumaCount(ctx, set);
  s.pcie_switches = SwitchCount(ctx, set);
  s.free_components_after = Components(ctx, ctx.available & ~set, &s.largest_free_after);
  return s;
}

std::string Explain(const Score& score, const std::vector<int>& order) {
  // Built with += only: GCC 12 warns (-Wrestrict, falsely) on `"literal" + std::string` at -O3.
  const int k = static_cast<int>(order.size());
  if (k == 0) return "no cards";
  std::string out = std::to_string(k);
  out += k == 1 ? " card " : " cards ";
  for (int i = 0; i < k; ++i) {
    if (i > 0) out += score.ordered ? "-" : ",";
    out += '#';
    out += std::to_string(order[i]);
  }
  if (!score.connected) {
    out += " in ";
    out += std::to_string(score.components);
    out += " separate linked sets (no linked set of ";
    out += std::to_string(k);
    out += " fits the request)";
  } else if (k == 1) {
    out += " (single card)";
  } else if (score.cycle) {
    out += " linked as a ring";
  } else if (score.ordered) {
    out += " linked as a path";
  } else {
    out += " linked, but no single path visits them all";
  }
  out += "; ";
  out += std::to_string(score.numa_nodes);
  out += score.numa_nodes == 1 ? " NUMA node, " : " NUMA nodes, ";
  out += std::to_string(score.pcie_switches);
  out += score.pcie_switches == 1 ? " PCIe switch group" : " PCIe switch groups";
  if (score.free_components_after == 0) {
    out += "; no free cards left";
  } else {
    out += "; leaves a largest free linked set of ";
    out += std::to_string(score.largest_free_after);
    out += " in ";
    out += std::to_string(score.free_components_after);
    out += score.free_components_after == 1 ? " free set" : " free sets";
  }
  return out;
}

}  // namespace internal

std::vector<int> LinkOrder(const CardGraph& graph, Mask cards) {
  internal::Context ctx = internal::MakeContext(graph, 0);
  cards &= graph.AllMask();
  std::vector<int> out;
  while (cards != 0) {
    const Mask part = internal::LowestPart(ctx.adj, cards);
    const std::vector<int> walk = internal::OrderPart(ctx.adj, part);
    out.insert(out.end(), walk.begin(), walk.end());
    cards &= ~part;
  }
  return out;
}

Score Evaluate(const CardGraph& graph, Mask available, Mask chosen) {
  const internal::Context ctx = internal::MakeContext(graph, available);
  chosen &= graph.AllMask();
  Score s = internal::ScoreOf(ctx, chosen);
  s.explanation = internal::Explain(s, LinkOrder(graph, chosen));
  return s;
}

int CompareScores(const Score& a, const Score& b) {
  const internal::Key ka = internal::PackKey(a);
  const internal::Key kb = internal::PackKey(b);
  if (ka == kb) return 0;
  return ka > kb ? -1 : 1;
}

}  // namespace hyperaccel::placement
