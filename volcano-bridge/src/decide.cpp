#include "hyperaccel/bridge/decide.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <unordered_map>

namespace hyperaccel::bridge {
namespace {

int Count(Mask m) { return std::popcount(m); }
Mask Bit(int i) { return Mask{1} << i; }
Mask Above(int i) { return i >= 63 ? Mask{0} : ~Mask{0} << (i + 1); }

placement::FitRequest FitOf(const TaskNeed& need) {
  placement::FitRequest r;
  r.size = need.cards;
  r.require_linked = need.require_linked;
  r.preemptable = need.spot;
  return r;
}

bool Fits(const TaskNeed& need, const placement::NodeFit& fit) {
  return fit.fits && (!need.require_linked || fit.fits_linked);
}

std::string Requested(std::string_view resource, int cards) {
  return std::string(resource) + ": " + std::to_string(cards) + " requested, ";
}

// Fewest busy (not free) cards in any linked set of `k` healthy cards, found by enumerating the
// connected k-sets (ESU enumeration) within a budget; -1 when no linked k-set exists at all.
class LinkedSetSearch {
 public:
  LinkedSetSearch(const placement::CardGraph& graph, Mask healthy, Mask free, int k)
      : graph_(graph),
        healthy_(healthy),
        free_(free),
        k_(k),
        floor_(std::max(0, k - Count(free & healthy))) {}

  int Run() {
    for (Mask vs = healthy_; vs != 0 && !Done(); vs &= vs - 1) {
      const int v = std::countr_zero(vs);
      const Mask nv = graph_.adj[static_cast<size_t>(v)] & healthy_;
      Grow(Bit(v), nv & Above(v), nv | Bit(v), v);
    }
    return best_ == kNone ? -1 : best_;
  }

 private:
  static constexpr int kNone = std::numeric_limits<int>::max();
  static constexpr long kBudget = 200000;

  bool Done() const { return best_ <= floor_ || visited_ > kBudget; }

  void Grow(Mask sub, Mask ext, Mask closed, int v) {
    ++visited_;
    if (Count(sub) == k_) {
      best_ = std::min(best_, Count(sub & ~free_));
      return;
    }
    while (ext != 0 && !Done()) {
      const int w = std::countr_zero(ext);
      ext &= ext - 1;
      const Mask nw = graph_.adj[static_cast<size_t>(w)] & healthy_ & Above(v);
      Grow(sub | Bit(w), ext | (nw & ~closed), closed | nw | Bit(w), v);
    }
  }

  const placement::CardGraph& graph_;
  Mask healthy_;
  Mask free_;
  int k_;
  int floor_;
  int best_ = kNone;
  long visited_ = 0;
};

// placement::ScoreNode answers within one prioritize call, shared by nodes of the same graph
// shape and free cards (clusters are mostly identical servers, so 1000 nodes reduce to a few
// dozen distinct answers). Pure function of its key, so the cache cannot change a decision.
class FitMemo {
 public:
  const placement::NodeFit& Fit(const placement::CardGraph& graph, uint64_t shape, Mask free,
                                const placement::FitRequest& r) {
    if (shape == 0) {
      scratch_ = placement::ScoreNode(graph, free, r);
      return scratch_;
    }
    Key key{shape, free, r.size, r.require_linked, r.preemptable};
    auto it = fits_.find(key);
    if (it == fits_.end()) it = fits_.emplace(key, placement::ScoreNode(graph, free, r)).first;
    return it->second;
  }

 private:
  struct Key {
    uint64_t shape;
    Mask free;
    int size;
    bool linked;
    bool spot;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      uint64_t h = k.shape ^ (k.free * 0x9E3779B97F4A7C15ULL);
      h ^= (static_cast<uint64_t>(k.size) << 2 | (k.linked ? 2U : 0U) | (k.spot ? 1U : 0U)) *
           0xC2B2AE3D27D4EB4FULL;
      return static_cast<size_t>(h ^ (h >> 29));
    }
  };
  std::unordered_map<Key, placement::NodeFit, KeyHash> fits_;
  placement::NodeFit scratch_;
};

}  // namespace

uint64_t ShapeOf(const placement::CardGraph& graph) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a over the per-card facts placement reads
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xFF;
      h *= 0x100000001B3ULL;
    }
  };
  mix(static_cast<uint64_t>(graph.size()));
  for (int i = 0; i < graph.size(); ++i) {
    const auto c = static_cast<size_t>(i);
    mix(graph.adj[c]);
    mix(static_cast<uint64_t>(static_cast<int64_t>(graph.numa[c])));
    mix(static_cast<uint64_t>(static_cast<int64_t>(graph.pcie_switch[c])));
    mix(graph.healthy[c] ? 1 : 0);
  }
  return h == 0 ? 1 : h;
}

PredicateDecision DecidePredicate(const TaskNeed& need, const NodeCards& node, std::string_view resource) {
  const int k = need.cards;
  if (k < 0) {
    return {kUnschedulableForever, std::string(resource) + ": " + std::to_string(k) +
                                       " requested: a task cannot request a negative number of cards"};
  }
  if (k == 0) return {};
  if (!node.topology) {
    if (node.capacity < k) {
      return {kUnschedulableForever,
              Requested(resource, k) + node.name + " has " + std::to_string(node.capacity)};
    }
    if (node.free_count < k) {
      return {kUnschedulable,
              Requested(resource, k) + std::to_string(node.free_count) + " free on " + node.name};
    }
    return {};
  }
  const auto& graph = node.topology->graph;
  const placement::NodeFit now = placement::ScoreNode(graph, node.free, FitOf(need));
  if (Fits(need, now)) return {};
  const placement::NodeFit ever = placement::ScoreNode(graph, node.topology->healthy, FitOf(need));
  if (!ever.fits) {
    return {kUnschedulableForever,
            Requested(resource, k) + node.name + " has " + std::to_string(node.capacity) + " healthy"};
  }
  if (need.require_linked && !ever.fits_linked) {
    return {kUnschedulableForever,
            std::string(resource) + ": no linked set of " + std::to_string(k) + " on " + node.name};
  }
  if (!now.fits) {
    return {kUnschedulable,
            Requested(resource, k) + std::to_string(node.free_count) + " free on " + node.name};
  }
  return {kUnschedulable,
          std::string(resource) + ": no free linked set of " + std::to_string(k) + " on " + node.name};
}

bool HoldApplies(const DomainHold& hold) {
  return hold.wait_s > 0 && hold.age_s < hold.wait_s && hold.gang_tasks >= 2 &&
         hold.gang_tasks <= hold.largest_domain_slots && hold.unplaced >= 1;
}

PredicateDecision DecideDomainHold(const DomainHold& hold) {
  const std::string& domain = hold.node_domain;
  if (!hold.gang_domains.empty()) {
    if (!domain.empty() && hold.gang_domains.count(domain) > 0) return {};
    return {kUnschedulable, "link-domain wait: the gang's other tasks are in link domain " +
                                *hold.gang_domains.begin() + ", this node is in " +
                                (domain.empty() ? std::string("none") : domain)};
  }
  if (!domain.empty() && hold.node_domain_slots >= hold.unplaced) return {};
  const std::string waited = std::to_string(std::llround(std::max(0.0, hold.age_s))) + " s of " +
                             std::to_string(std::llround(hold.wait_s)) + " s";
  return {kUnschedulable,
          "link-domain wait (" + waited + "): " +
              (domain.empty()
                   ? std::string("node has no link domain")
                   : "link domain " + domain + " has room for " + std::to_string(hold.node_domain_slots) +
                         " of the gang's " + std::to_string(hold.unplaced) + " tasks")};
}

Mask PredictCards(const TaskNeed& need, const NodeCards& node) {
  if (!node.topology || need.cards <= 0) return 0;
  const placement::NodeFit fit = placement::ScoreNode(node.topology->graph, node.free, FitOf(need));
  return fit.fits ? fit.predicted : 0;
}

void TakeCards(NodeCards& node, int count) {
  if (count <= 0) return;
  if (!node.topology) {
    node.free_count = std::max(0, node.free_count - count);
    return;
  }
  TaskNeed need;
  need.cards = std::min(count, Count(node.free));
  Mask taken = PredictCards(need, node);
  // No prediction (should not happen when enough cards are free): take the highest free cards.
  for (Mask rest = node.free & ~taken; Count(taken) < need.cards && rest != 0;) {
    const int hi = 63 - std::countl_zero(rest);
    taken |= Bit(hi);
    rest &= ~Bit(hi);
  }
  node.free &= ~taken;
  node.free_count = Count(node.free);
}

namespace {

double BaseScoreWith(const TaskNeed& need, const NodeCards& node, FitMemo& memo) {
  if (need.cards <= 0) return 0;
  if (!node.topology) {
    if (node.free_count < need.cards || node.capacity <= 0) return 0;
    const double left = node.free_count - need.cards;
    return std::clamp(100.0 * (node.capacity - left) / node.capacity, 0.0, 100.0);
  }
  const placement::NodeFit& fit =
      memo.Fit(node.topology->graph, node.topology->shape, node.free, FitOf(need));
  if (!Fits(need, fit)) return 0.0;
  // ScoreNode's whole points rank the cards the task would get; within one point the node left
  // fullest wins (binpack): nodes of equal fit otherwise tie and a random one is broken, and
  // every empty node broken by a small task is one fewer for a whole-node task.
  const int cards = Count(node.topology->healthy);
  const int left = Count(node.free & node.topology->healthy) - need.cards;
  const double packed = cards > 0 ? static_cast<double>(cards - left) / cards : 1.0;
  return std::clamp(static_cast<double>(fit.score) - 1.0 + packed, 0.0, 100.0);
}

// How many tasks like `need` the node can take one after the other.
int Slots(const TaskNeed& need, const NodeCards& node, int enough, FitMemo& memo) {
  int slots = 0;
  if (!node.topology) return need.cards > 0 ? std::min(enough, node.free_count / need.cards) : 0;
  Mask free = node.free;
  while (slots < enough) {
    const placement::NodeFit& fit = memo.Fit(node.topology->graph, node.topology->shape, free, FitOf(need));
    if (!Fits(need, fit) || fit.predicted == 0) break;
    free &= ~fit.predicted;
    ++slots;
  }
  return slots;
}

std::string DomainKey(const NodeCards& n) { return n.link_domain.empty() ? "node/" + n.name : n.link_domain; }

}  // namespace

double BaseScore(const TaskNeed& need, const NodeCards& node) {
  FitMemo memo;
  return BaseScoreWith(need, node, memo);
}

std::vector<NodeScore> DecidePrioritize(const TaskNeed& need, const std::vector<NodeCards>& nodes,
                                        const GangView& gang, double weight) {
  std::vector<NodeScore> out;
  if (need.cards <= 0) return out;
  const bool placed = !gang.domains.empty() || !gang.racks.empty() || !gang.idcs.empty();
  // Gang-size preference for the first task applies where link domains are labelled.
  const bool labelled =
      std::any_of(nodes.begin(), nodes.end(), [](const NodeCards& n) { return !n.link_domain.empty(); });
  const bool spread = !placed && gang.remaining > 1 && labelled;
  FitMemo memo;
  std::map<std::string, int> domain_slots;
  if (spread) {
    for (const auto& n : nodes) domain_slots[DomainKey(n)] += Slots(need, n, gang.remaining, memo);
  }
  out.reserve(nodes.size());
  for (const auto& n : nodes) {
    const double base = BaseScoreWith(need, n, memo);
    if (base <= 0 && DecidePredicate(need, n, "").code != kPass) continue;
    double value = base;
    if (placed) {
      double locality = 0;
      if (!n.link_domain.empty() && gang.domains.count(n.link_domain))
        locality = 100;
      else if (!n.rack.empty() && gang.racks.count(n.rack))
        locality = 200.0 / 3;
      else if (!n.idc.empty() && gang.idcs.count(n.idc))
        locality = 100.0 / 3;
      value = 0.25 * base + 0.75 * locality;
    } else if (spread) {
      const double room = std::min(1.0, static_cast<double>(domain_slots[DomainKey(n)]) / gang.remaining);
      value = 0.25 * base + 0.75 * 100 * room;
    } else if (gang.remaining <= 1 && n.domain_cards > 0 && base > 0) {
      const double point = std::floor(base);
      const double domain_fill = std::clamp(static_cast<double>(n.domain_busy) / n.domain_cards, 0.0, 1.0);
      value = point + 0.5 * domain_fill + 0.5 * (base - point);
    }
    out.push_back({n.name, value * weight});
  }
  return out;
}

VictimDecision DecideVictims(const TaskNeed& evictor, const NodeCards& node,
                             const std::vector<Candidate>& candidates) {
  VictimDecision d;
  const int k = evictor.cards;
  if (k <= 0) {
    d.reason = "evictor requests no cards";
    return d;
  }
  if (DecidePredicate(evictor, node, "").code == kPass) {
    d.reason = "evictor fits without evictions";
    return d;
  }
  d.status = kVoteReject;
  if (node.capacity < k) {
    d.reason = "node has only " + std::to_string(node.capacity) + " usable cards";
    return d;
  }
  int need_free = k - node.free_count;
  if (node.topology && evictor.require_linked) {
    const int busy = LinkedSetSearch(node.topology->graph, node.topology->healthy, node.free, k).Run();
    if (busy < 0) {
      d.reason = "node has no linked set of " + std::to_string(k);
      return d;
    }
    need_free = std::max(need_free, busy);
  }
  std::vector<size_t> holders;
  int holder_cards = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (candidates[i].cards > 0) {
      holders.push_back(i);
      holder_cards += candidates[i].cards;
    }
  }
  if (holder_cards < need_free) {
    d.reason = "evicting every candidate frees " + std::to_string(holder_cards) + " of " +
               std::to_string(need_free) + " needed cards";
    return d;
  }
  // Fewest victims, then the lowest highest priority, then the lowest priority sum.
  struct Cost {
    int count = std::numeric_limits<int>::max();
    int64_t max_priority = 0;
    int64_t sum_priority = 0;
    bool operator<(const Cost& o) const {
      if (count != o.count) return count < o.count;
      if (max_priority != o.max_priority) return max_priority < o.max_priority;
      return sum_priority < o.sum_priority;
    }
  };
  Cost best;
  std::vector<size_t> chosen;
  if (holders.size() <= 16) {
    const uint32_t subsets = uint32_t{1} << holders.size();
    uint32_t best_set = 0;
    for (uint32_t s = 1; s < subsets; ++s) {
      Cost c;
      c.count = std::popcount(s);
      if (best.count < c.count) continue;
      int freed = 0;
      c.max_priority = std::numeric_limits<int64_t>::min();
      for (uint32_t b = s; b != 0; b &= b - 1) {
        const Candidate& cand = candidates[holders[static_cast<size_t>(std::countr_zero(b))]];
        freed += cand.cards;
        c.max_priority = std::max(c.max_priority, cand.priority);
        c.sum_priority += cand.priority;
      }
      if (freed >= need_free && c < best) {
        best = c;
        best_set = s;
      }
    }
    for (uint32_t b = best_set; b != 0; b &= b - 1)
      chosen.push_back(holders[static_cast<size_t>(std::countr_zero(b))]);
  } else {
    // Many holders (large nodes): lowest priority first, bigger holders first among equals.
    std::vector<size_t> order = holders;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (candidates[a].priority != candidates[b].priority)
        return candidates[a].priority < candidates[b].priority;
      return candidates[a].cards > candidates[b].cards;
    });
    int freed = 0;
    for (size_t i : order) {
      if (freed >= need_free) break;
      chosen.push_back(i);
      freed += candidates[i].cards;
    }
    std::sort(chosen.begin(), chosen.end());
  }
  d.status = kVotePermit;
  d.chosen = std::move(chosen);
  d.reason = std::to_string(d.chosen.size()) + " victims free " + std::to_string(need_free) + " needed cards";
  return d;
}

}  // namespace hyperaccel::bridge
