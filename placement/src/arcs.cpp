// Link domains and linked arcs: the contiguous link-ordered card sets the DRA driver publishes.
#include <algorithm>
#include <bit>

#include "hyperaccel/placement/placement.h"

namespace hyperaccel::placement {
namespace {

Mask Bit(int i) { return Mask{1} << i; }

bool Linked(const CardGraph& graph, int a, int b) { return (graph.adj[a] & Bit(b)) != 0; }

}  // namespace

std::vector<LinkDomain> LinkDomains(const CardGraph& graph) {
  std::vector<LinkDomain> out;
  if (graph.adj.size() != graph.ids.size()) return out;  // not a graph GraphFromInventory built
  Mask left = graph.AllMask();
  while (left != 0) {
    // Breadth-first closure of the lowest remaining card over up links.
    Mask part = left & (~left + 1);
    for (Mask frontier = part; frontier != 0;) {
      Mask next = 0;
      for (Mask f = frontier; f != 0; f &= f - 1) next |= graph.adj[std::countr_zero(f)];
      next &= graph.AllMask() & ~part;
      part |= next;
      frontier = next;
    }
    LinkDomain d;
    d.index = static_cast<int>(out.size());
    d.cards = part;
    d.order = LinkOrder(graph, part);
    const int n = static_cast<int>(d.order.size());
    d.ring = n >= 3 && Linked(graph, d.order.back(), d.order.front());
    out.push_back(std::move(d));
    left &= ~part;
  }
  return out;
}

std::vector<Arc> LinkedArcs(const CardGraph& graph, std::span<const int> sizes, ArcAlignment alignment) {
  std::vector<Arc> out;
  for (const LinkDomain& d : LinkDomains(graph)) {
    const int n = static_cast<int>(d.order.size());
    std::vector<int> seen_sizes;
    for (int k : sizes) {
      if (k < 2 || k > n) continue;
      if (std::find(seen_sizes.begin(), seen_sizes.end(), k) != seen_sizes.end()) continue;
      seen_sizes.push_back(k);
      const bool wrap = d.ring && alignment == ArcAlignment::kAll && k < n;
      const int last_start = wrap ? n - 1 : n - k;
      const int step = alignment == ArcAlignment::kAligned ? k : 1;
      for (int start = 0; start <= last_start; start += step) {
        Arc arc;
        arc.domain = d.index;
        arc.size = k;
        arc.start = start;
        bool linked = true;
        for (int j = 0; j < k; ++j) {
          const int card = d.order[(start + j) % n];
          if (j > 0 && !Linked(graph, arc.cards.back(), card)) linked = false;
          arc.cards.push_back(card);
          arc.mask |= Bit(card);
        }
        if (linked) out.push_back(std::move(arc));
      }
    }
  }
  return out;
}

std::optional<Arc> FirstFitArc(std::span<const Arc> arcs, Mask free, int size) {
  for (const Arc& a : arcs) {
    if (a.size == size && (a.mask & ~free) == 0) return a;
  }
  return std::nullopt;
}

}  // namespace hyperaccel::placement
