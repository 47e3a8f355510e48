// The card graph, request validation and the Choose entry points.
#include "hyperaccel/placement/placement.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "internal.h"

namespace hyperaccel::placement {

using internal::Bit;
using internal::Count;

// Above this many cards Choose(kAuto) still searches exhaustively while the enumeration stays
// within this many cost units (one per enumeration step, 32 per scored set), then falls back
// to the heuristic.
constexpr long kAutoExactBudget = 40000;
// Depth-first steps per Hamiltonian walk check on meshes above kExactCards cards.
constexpr long kLargeWalkSteps = 512;

std::optional<int> CardGraph::IndexOf(std::string_view id) const {
  const auto it = std::lower_bound(ids.begin(), ids.end(), id);
  if (it != ids.end() && *it == id) return static_cast<int>(it - ids.begin());
  for (size_t i = 0; i < ids.size(); ++i) {  // graphs built by hand may not be sorted
    if (ids[i] == id) return static_cast<int>(i);
  }
  return std::nullopt;
}

Mask CardGraph::AllMask() const {
  const int n = size();
  return n >= 64 ? ~Mask{0} : (Mask{1} << n) - 1;
}

Mask CardGraph::HealthyMask() const {
  Mask m = 0;
  // A graph built by hand may hold more than kMaxCards cards; those have no bit.
  for (int i = 0; i < size() && i < kMaxCards && i < static_cast<int>(healthy.size()); ++i) {
    if (healthy[i]) m |= Bit(i);
  }
  return m;
}

Result<Mask> CardGraph::MaskOf(std::span<const std::string> wanted) const {
  Mask m = 0;
  for (const std::string& id : wanted) {
    const std::optional<int> index = IndexOf(id);
    if (!index) return InvalidArgument("unknown card ID \"" + id + "\"");
    if (*index >= kMaxCards) {
      return InvalidArgument("card " + id + " is card " + std::to_string(*index + 1) +
                             " of the graph, at most " + std::to_string(kMaxCards) + " are supported");
    }
    m |= Bit(*index);
  }
  return m;
}

std::vector<std::string> CardGraph::IdsOf(Mask m) const {
  std::vector<std::string> out;
  internal::ForEachBit(m & AllMask(), [&](int i) { out.push_back(ids[i]); });
  return out;
}

namespace {

// The PCIe switch a card sits behind: its path up to the first component after the root port
// (the switch's upstream port). Empty when the card hangs directly off a root port.
std::string SwitchKey(const hw::Card& card) {
  if (card.pcie_path.size() < 3) return {};
  return card.pcie_path[0] + "/" + card.pcie_path[1] + "/" + card.pcie_path[2];
}

bool OnThisNode(const hw::PortRef& end, const std::string& node) {
  return end.node.empty() || end.node == node;
}

Status CheckGraph(const CardGraph& graph) {
  const size_t n = graph.ids.size();
  if (n > static_cast<size_t>(kMaxCards)) {
    return InvalidArgument("card graph has " + std::to_string(n) + " cards, at most " +
                           std::to_string(kMaxCards) + " are supported");
  }
  if (graph.serials.size() != n || graph.numa.size() != n || graph.pcie_switch.size() != n ||
      graph.healthy.size() != n || graph.adj.size() != n) {
    return InvalidArgument("card graph is inconsistent: every per-card vector must have " +
                           std::to_string(n) + " entries");
  }
  return Status::Ok();
}

}  // namespace

Result<CardGraph> GraphFromInventory(const hw::Inventory& inventory) {
  if (inventory.cards.size() > static_cast<size_t>(kMaxCards)) {
    return InvalidArgument("node " + inventory.node_name + " has " + std::to_string(inventory.cards.size()) +
                           " cards, placement supports at most " + std::to_string(kMaxCards));
  }
  std::vector<const hw::Card*> cards;
  for (const hw::Card& card : inventory.cards) cards.push_back(&card);
  std::sort(cards.begin(), cards.end(), [](const hw::Card* a, const hw::Card* b) { return a->id < b->id; });
  CardGraph g;
  std::map<std::string, int> by_serial;
  std::map<std::string, int> switch_ids;
  for (size_t i = 0; i < cards.size(); ++i) {
    const hw::Card& card = *cards[i];
    if (i > 0 && card.id == cards[i - 1]->id) return InvalidArgument("duplicate card ID \"" + card.id + "\"");
    if (!card.serial.empty() && !by_serial.emplace(card.serial, static_cast<int>(i)).second) {
      return InvalidArgument("cards " + cards[by_serial[card.serial]]->id + " and " + card.id +
                             " report the same serial \"" + card.serial + "\"");
    }
    g.ids.push_back(card.id);
    g.serials.push_back(card.serial);
    g.numa.push_back(card.numa_node.value_or(-1));
    const std::string key = SwitchKey(card);
    if (key.empty()) {
      g.pcie_switch.push_back(-1);
    } else {
      // Group IDs in order of first appearance by card index: deterministic for a given node.
      const auto [it, added] = switch_ids.emplace(key, static_cast<int>(switch_ids.size()));
      g.pcie_switch.push_back(it->second);
    }
    g.healthy.push_back(card.health == hw::Health::kHealthy);
  }
  g.adj.assign(cards.size(), 0);
  for (const hw::Link& link : inventory.links) {
    if (link.state != hw::LinkState::kUp) continue;
    if (!OnThisNode(link.a, inventory.node_name) || !OnThisNode(link.b, inventory.node_name)) continue;
    const auto a = by_serial.find(link.a.serial);
    const auto b = by_serial.find(link.b.serial);
    if (a == by_serial.end() || b == by_serial.end() || a->second == b->second) continue;
    g.adj[a->second] |= Bit(b->second);
    g.adj[b->second] |= Bit(a->second);
  }
  return g;
}

Result<Choice> ChooseWith(const CardGraph& graph, const Request& request, Method method) {
  if (Status s = CheckGraph(graph); !s.ok()) return s;
  const Mask all = graph.AllMask();
  if ((request.available & ~all) != 0 || (request.must_include & ~all) != 0) {
    return InvalidArgument("request names card indices beyond the " + std::to_string(graph.size()) +
                           " cards of the graph");
  }
  const Mask available = request.available & graph.HealthyMask();
  const int k = request.size;
  if (k < 1) return InvalidArgument("requested " + std::to_string(k) + " cards, at least 1 is needed");
  const Mask missing = request.must_include & ~available;
  if (missing != 0) {
    const int i = internal::Low(missing);
    const bool unhealthy = !graph.healthy[i];
    return InvalidArgument("must-include card " + graph.ids[i] +
                           (unhealthy ? " is unhealthy" : " is not among the available cards"));
  }
  if (Count(request.must_include) > k) {
    return InvalidArgument(std::to_string(Count(request.must_include)) + " must-include cards exceed the " +
                           std::to_string(k) + " requested");
  }
  if (Count(available) < k) {
    return ResourceExhausted("requested " + std::to_string(k) + " cards, only " +
                             std::to_string(Count(available)) + " healthy cards are available");
  }
  // Up to kExactCards cards every walk check is exact (subset tables as a last resort). Above, the
  // searches use bounded walk checks; a check that gives up makes the answer heuristic.
  internal::Context ctx = internal::MakeContext(graph, available);
  const bool small = graph.size() <= kExactCards;
  if (!small) ctx.walk_effort = {kLargeWalkSteps, false};
  internal::SearchResult found;
  switch (method) {
    case Method::kExact: found = internal::SearchExact(ctx, request.must_include, k, -1); break;
    case Method::kHeuristic: found = internal::SearchHeuristic(ctx, request.must_include, k); break;
    case Method::kAuto:
      found = internal::SearchExact(ctx, request.must_include, k, small ? -1 : kAutoExactBudget);
      break;
  }
  if (Count(found.cards) != k || (found.cards & request.must_include) != request.must_include) {
    return Internal("placement search returned " + std::to_string(Count(found.cards)) +
                    " cards for a request of " + std::to_string(k));
  }
  Choice choice;
  choice.cards = found.cards;
  choice.order = LinkOrder(graph, found.cards);
  choice.score = internal::ScoreOf(ctx, found.cards);
  choice.score.explanation = internal::Explain(choice.score, choice.order);
  choice.exact = found.exact;
  return choice;
}

Result<Choice> Choose(const CardGraph& graph, const Request& request) {
  return ChooseWith(graph, request, Method::kAuto);
}

Result<std::vector<std::string>> ChooseIds(const CardGraph& graph, std::span<const std::string> available,
                                           std::span<const std::string> must_include, int size) {
  Result<Mask> avail = graph.MaskOf(available);
  if (!avail.ok()) return avail.status().WithContext("available");
  Result<Mask> must = graph.MaskOf(must_include);
  if (!must.ok()) return must.status().WithContext("must-include");
  Result<Choice> choice = Choose(graph, Request{*avail, *must, size});
  if (!choice.ok()) return choice.status();
  std::vector<std::string> out;
  for (int i : choice->order) out.push_back(graph.ids[i]);
  return out;
}

}  // namespace hyperaccel::placement
