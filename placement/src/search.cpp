// Finding the best set: exhaustive search (connected sets first, all sets when no connected set
// exists) and the heuristic for large graphs.
#include <algorithm>
#include <vector>

#include "internal.h"

namespace hyperaccel::placement::internal {
namespace {

// Keeps the best set seen so far and prunes candidates that cannot beat it: the cheap levels
// (parts, NUMA, switches) are bounded first, the walk next, what stays free last.
class Incumbent {
 public:
  Incumbent(const Context& ctx, int k) : ctx_(ctx), max_free_(Count(ctx.available) - k) {}

  // Offers a set with `components` linked parts; returns true when it became the best.
  bool Offer(Mask set, int components) {
    ++scored_;
    const int numa = NumaCount(ctx_, set);
    const int switches = SwitchCount(ctx_, set);
    const bool one_part = components == 1;
    if (!Reaches(PackKey(components, one_part, numa, switches, max_free_, 0, one_part))) return false;
    Walk walk;
    if (one_part) {
      walk = FindWalk(ctx_.adj, set, ctx_.walk_effort);
      undecided_ = undecided_ || walk.undecided;
      if (!Reaches(PackKey(components, walk.path, numa, switches, max_free_, 0, walk.cycle))) return false;
    }
    int largest = 0;
    const int free_parts = Components(ctx_, ctx_.available & ~set, &largest);
    const Key key = PackKey(components, walk.path, numa, switches, largest, free_parts, walk.cycle);
    if (have_ && (key < key_ || (key == key_ && !TieBreakLess(set, set_)))) return false;
    have_ = true;
    key_ = key;
    set_ = set;
    components_ = components;
    return true;
  }
  // Offers a set whose parts are not counted yet.
  bool Offer(Mask set) { return Offer(set, Components(ctx_, set, nullptr)); }

  bool have() const { return have_; }
  Mask set() const { return set_; }
  int components() const { return components_; }
  long scored() const { return scored_; }
  // A walk check gave up on some candidate: the result is not proven optimal.
  bool undecided() const { return undecided_; }

 private:
  // Whether a set with at most this key could still win (ties go to the index tie-break).
  bool Reaches(Key upper) const { return !have_ || upper >= key_; }

  const Context& ctx_;
  int max_free_;
  bool have_ = false;
  bool undecided_ = false;
  long scored_ = 0;
  int components_ = 0;
  Key key_ = 0;
  Mask set_ = 0;
};

// Cost units of the bounded exhaustive search: one per enumeration step, more per scored set.
constexpr long kScoreCost = 32;
constexpr long kBoundCost = 8;  // one lower-bound evaluation in AllSets

// Enumerates every connected set of k available cards that contains `must` exactly once
// (Wernicke's ESU: each set is grown from its lowest card, extended only by cards above it that
// are not yet next to the set).
class ConnectedSets {
 public:
  ConnectedSets(const Context& ctx, Mask must, int k, long budget, Incumbent* best)
      : ctx_(ctx), must_(must), k_(k), budget_(budget), best_(best) {
    for (int i = 0; i < ctx.n; ++i) adj_[i] = ctx.adj[i] & ctx.available;
  }

  // False when the budget ran out before every set was seen.
  bool Run() {
    const int last_seed = must_ != 0 ? Low(must_) : kMaxCards - 1;  // the seed is the lowest card
    for (Mask seeds = ctx_.available; seeds != 0; seeds &= seeds - 1) {
      const int v = Low(seeds);
      if (v > last_seed) break;
      Extend(Bit(v), 1, adj_[v] & Above(v), Bit(v) | adj_[v], v);
      if (out_of_budget_) return false;
    }
    return true;
  }

 private:
  void Extend(Mask set, int size, Mask ext, Mask closed, int seed) {
    if (budget_ >= 0 && ++spent_ > budget_) {
      out_of_budget_ = true;
      return;
    }
    if (size == k_) {
      if ((set & must_) == must_) {
        spent_ += kScoreCost;
        best_->Offer(set, 1);
      }
      return;
    }
    while (ext != 0 && !out_of_budget_) {
      const int w = Low(ext);
      ext &= ext - 1;
      const Mask grow = adj_[w] & ~closed & Above(seed);
      Extend(set | Bit(w), size + 1, ext | grow, closed | adj_[w], seed);
    }
  }

  const Context& ctx_;
  std::array<Mask, kMaxCards> adj_{};
  Mask must_;
  int k_;
  long budget_;
  long spent_ = 0;
  bool out_of_budget_ = false;
  Incumbent* best_;
};

// Every set of k available cards containing `must`, for when no connected one exists: include /
// exclude the free cards in index order, pruning branches whose parts can no longer be fewer than
// the best set's. A part is closed when no undecided card touches it; the closed parts stay
// parts, and the open ones plus any cards still to add make at least one more.
class AllSets {
 public:
  AllSets(const Context& ctx, Mask must, int k, long budget, Incumbent* best)
      : ctx_(ctx), must_(must), budget_(budget), best_(best) {
    ForEachBit(ctx.available & ~must, [&](int v) { pool_.push_back(v); });
    left_ = k - Count(must);
  }

  bool Run() {
    Visit(0, must_, left_);
    return !out_of_budget_;
  }

 private:
  void Visit(size_t pos, Mask set, int left) {
    if (out_of_budget_) return;
    if (budget_ >= 0 && (spent_ += left == 0 ? kScoreCost : kBoundCost) > budget_) {
      out_of_budget_ = true;
      return;
    }
    if (left == 0) {
      best_->Offer(set);
      return;
    }
    if (pool_.size() - pos < static_cast<size_t>(left)) return;
    if (best_->have() && LowerBound(pos, set) > best_->components()) return;
    Visit(pos + 1, set | Bit(pool_[pos]), left - 1);
    Visit(pos + 1, set, left);
  }

  int LowerBound(size_t pos, Mask set) const {
    Mask undecided = 0;
    for (size_t i = pos; i < pool_.size(); ++i) undecided |= Bit(pool_[i]);
    int closed = 0;
    bool open = false;
    while (set != 0) {
      Mask near = 0;
      set &= ~LowestPart(ctx_.adj, set, &near);
      if ((near & undecided) != 0) {
        open = true;
      } else {
        ++closed;
      }
    }
    return closed + (open ? 1 : 0);
  }

  const Context& ctx_;
  Mask must_;
  long budget_;
  Incumbent* best_;
  std::vector<int> pool_;
  int left_ = 0;
  long spent_ = 0;
  bool out_of_budget_ = false;
};

// ---- Heuristic ----------------------------------------------------------------------------------

// The free linked set to start a new part in when `need` more cards are missing: the smallest one
// that can finish the request (snug, keeps larger sets free), preferring sets on NUMA nodes the
// chosen cards already touch; else the largest one (fewest parts in total), same preference.
// Remaining ties: the set holding the lowest card.
Mask BestFittingPart(const Context& ctx, Mask pool, int need, Mask numa_touched) {
  Mask chosen = 0;
  long chosen_rank = -1;
  while (pool != 0) {
    const Mask part = LowestPart(ctx.adj, pool);
    pool &= ~part;
    const long size = Count(part);
    const bool finishes = size >= need;
    const bool local = (part & numa_touched) != 0;
    const long rank = finishes ? (1L << 20 | static_cast<long>(local) << 10 | (kMaxCards - size))
                               : (size << 10 | static_cast<long>(local));
    if (rank > chosen_rank) {
      chosen = part;
      chosen_rank = rank;
    }
  }
  return chosen;
}

// Grows `set` to k cards: by a neighbour of the set while one exists (extending the walk at one of
// its ends, staying on touched NUMA nodes and switches, hugging busy cards so the free cards stay
// in one piece), else by starting a new part in the free linked set chosen by BestFittingPart.
Mask Grow(const Context& ctx, Mask set, int k) {
  std::array<int, kMaxCards> degree{};  // neighbours inside the set
  Mask touching = 0;
  Mask numa_touched = 0;
  Mask switch_touched = 0;
  // While the set is one walk (a path through every card), its two ends.
  bool walk = true;
  int end_a = -1;
  int end_b = -1;
  auto add = [&](int v) {
    if (set == 0) {
      end_a = end_b = v;
    } else if (walk && (ctx.adj[v] & Bit(end_a)) != 0) {
      end_a = v;
    } else if (walk && (ctx.adj[v] & Bit(end_b)) != 0) {
      end_b = v;
    } else {
      walk = false;
    }
    ForEachBit(ctx.adj[v] & set, [&](int u) { ++degree[u]; });
    degree[v] = Count(ctx.adj[v] & set);
    set |= Bit(v);
    touching |= ctx.adj[v];
    for (Mask g : ctx.numa_groups) {
      if ((g & Bit(v)) != 0) numa_touched |= g;
    }
    for (Mask g : ctx.switch_groups) {
      if ((g & Bit(v)) != 0) switch_touched |= g;
    }
  };
  const Mask start = set;
  set = 0;
  ForEachBit(start, add);
  int size = Count(set);
  while (size < k) {
    const Mask pool = ctx.available & ~set;
    Mask candidates = touching & pool;
    if (candidates == 0) candidates = BestFittingPart(ctx, pool, k - size, numa_touched);
    int pick = -1;
    long pick_rank = -1;
    ForEachBit(candidates, [&](int w) {
      bool keeps_walk = true;  // the first card starts a walk
      if (set != 0 && walk) {
        keeps_walk = (ctx.adj[w] & (Bit(end_a) | Bit(end_b))) != 0;
      } else if (set != 0) {
        keeps_walk = Count(ctx.adj[w] & set) <= 2;
        ForEachBit(ctx.adj[w] & set, [&](int u) { keeps_walk = keeps_walk && degree[u] < 2; });
      }
      const int free_neighbours = Count(ctx.adj[w] & pool & ~Bit(w));
      const long rank = static_cast<long>(keeps_walk) << 20 |
                        static_cast<long>((numa_touched & Bit(w)) != 0) << 19 |
                        static_cast<long>((switch_touched & Bit(w)) != 0) << 18 |
                        static_cast<long>(kMaxCards - free_neighbours) << 8 | (kMaxCards - w);
      if (rank > pick_rank) {
        pick_rank = rank;
        pick = w;
      }
    });
    if (pick < 0) break;  // no card left: fewer than k available (callers check, so never in practice)
    add(pick);
    ++size;
  }
  return set;
}

// Swaps one chosen card for one unchosen card (a neighbour of the rest while the set is linked)
// while that improves the objective, within a bounded number of scored sets.
Mask Improve(const Context& ctx, Mask must, Mask set, long max_scored) {
  Incumbent best(ctx, Count(set));
  best.Offer(set);
  while (best.scored() < max_scored) {
    const Mask current = best.set();
    const bool connected = Components(ctx, current, nullptr) == 1;
    ForEachBit(current & ~must, [&](int u) {
      const Mask base = current & ~Bit(u);
      Mask incoming = ctx.available & ~current;
      if (connected) {
        Mask near = 0;
        ForEachBit(base, [&](int v) { near |= ctx.adj[v]; });
        incoming &= near;
      }
      ForEachBit(incoming, [&](int w) {
        if (best.scored() < max_scored) best.Offer(base | Bit(w));
      });
    });
    if (best.set() == current) break;
  }
  return best.set();
}

}  // namespace

SearchResult SearchExact(const Context& ctx, Mask must, int k, long budget) {
  Incumbent best(ctx, k);
  if (Count(must) == k) {
    best.Offer(must);
    return {best.set(), true};
  }
  ConnectedSets connected(ctx, must, k, budget, &best);
  if (!connected.Run()) {
    // Out of budget among the connected sets: the heuristic may still find a better one.
    best.Offer(SearchHeuristic(ctx, must, k).cards);
    return {best.set(), false};
  }
  if (!best.have()) {
    // Start from the heuristic's answer: a good incumbent makes the bound prune early.
    best.Offer(SearchHeuristic(ctx, must, k).cards);
    AllSets all(ctx, must, k, budget < 0 ? budget : budget / 4, &best);
    if (!all.Run()) return {best.set(), false};
  }
  return {best.set(), !best.undecided()};
}

SearchResult SearchHeuristic(const Context& ctx, Mask must, int k) {
  Incumbent best(ctx, k);
  if (Count(must) == k) {
    best.Offer(must);
    return {best.set(), true};
  }
  best.Offer(Grow(ctx, must, k));  // first part chosen by fit (BestFittingPart)
  ForEachBit(ctx.available, [&](int seed) { best.Offer(Grow(ctx, must | Bit(seed), k)); });
  return {Improve(ctx, must, best.set(), 64 + 8L * k), false};
}

}  // namespace hyperaccel::placement::internal
