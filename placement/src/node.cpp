// Node scoring for the Volcano bridge and fragmentation measures.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "internal.h"

namespace hyperaccel::placement {

using internal::Count;

namespace {

constexpr int kDefaultSizes[] = {2, 4, 8};

// The free linked sets (connected parts of `free`).
std::vector<Mask> Parts(const internal::Context& ctx, Mask free) {
  std::vector<Mask> parts;
  while (free != 0) {
    const Mask part = internal::LowestPart(ctx.adj, free);
    parts.push_back(part);
    free &= ~part;
  }
  return parts;
}

int Percent(double share) { return static_cast<int>(std::lround(100.0 * share)); }

}  // namespace

NodeFit ScoreNode(const CardGraph& graph, Mask free, const FitRequest& request) {
  NodeFit fit;
  const int k = request.size;
  if (graph.ids.size() > static_cast<size_t>(kMaxCards) || graph.adj.size() != graph.ids.size() ||
      graph.healthy.size() != graph.ids.size()) {
    fit.reason = "card graph is inconsistent";
    return fit;
  }
  const internal::Context ctx = internal::MakeContext(graph, free & graph.AllMask());
  const Mask usable = ctx.available;
  const int free_cards = Count(usable);
  if (k < 1) {
    fit.reason = "task asks for " + std::to_string(k) + " cards";
    return fit;
  }
  const std::vector<Mask> parts = Parts(ctx, usable);
  int largest = 0;
  for (Mask p : parts) largest = std::max(largest, Count(p));
  fit.fits = free_cards >= k;
  fit.fits_linked = largest >= k;
  if (!fit.fits) {
    fit.reason = "needs " + std::to_string(k) + " cards, " + std::to_string(free_cards) + " healthy free";
    return fit;
  }
  if (request.require_linked && !fit.fits_linked) {
    fit.reason =
        "needs " + std::to_string(k) + " linked cards, largest free linked set is " + std::to_string(largest);
    return fit;
  }
  Result<Choice> choice = Choose(graph, Request{usable, 0, k});
  if (!choice.ok()) {
    fit.fits = false;
    fit.reason = choice.status().ToString();
    return fit;
  }
  fit.predicted = choice->cards;
  const Score& s = choice->score;
  // Best fit: how much of the free linked sets the task lands in it fills (1 = exactly).
  int host = 0;
  for (Mask p : parts) {
    if ((p & fit.predicted) != 0) host += Count(p);
  }
  const double fill = static_cast<double>(k) / host;
  if (request.preemptable) {
    const Fragmentation frag = NodeFragmentation(graph, usable);
    fit.score =
        1 + static_cast<int>(std::lround(49.0 * frag.score)) + static_cast<int>(std::lround(50.0 * fill));
    fit.reason = "spot: node fragmentation " + std::to_string(Percent(frag.score)) + "%, fill " +
                 std::to_string(Percent(fill)) + "%";
  } else if (s.connected) {
    fit.score = 50 + static_cast<int>(std::lround(30.0 * fill)) + (s.ordered ? 10 : 0) +
                (s.numa_nodes <= 1 ? 5 : 0) + (s.pcie_switches <= 1 ? 5 : 0);
    fit.reason =
        "linked set fills " + std::to_string(Percent(fill)) + "% of its free linked set; " + s.explanation;
  } else {
    fit.score = 1 + static_cast<int>(std::lround(29.0 * fill / s.components));
    fit.reason = "no linked set of " + std::to_string(k) + "; " + s.explanation;
  }
  fit.score = std::clamp(fit.score, 1, 100);
  return fit;
}

Fragmentation NodeFragmentation(const CardGraph& graph, Mask free, std::span<const int> sizes) {
  Fragmentation f;
  if (graph.ids.size() > static_cast<size_t>(kMaxCards) || graph.adj.size() != graph.ids.size() ||
      graph.healthy.size() != graph.ids.size()) {
    return f;
  }
  if (sizes.empty()) sizes = kDefaultSizes;
  int smallest = 0;
  for (int s : sizes) {
    if (s > 1 && (smallest == 0 || s < smallest)) smallest = s;
  }
  const internal::Context ctx = internal::MakeContext(graph, free & graph.AllMask());
  f.free_cards = Count(ctx.available);
  for (Mask p : Parts(ctx, ctx.available)) {
    const int size = Count(p);
    f.largest_free_linked = std::max(f.largest_free_linked, size);
    if (smallest > 0 && size < smallest) f.stranded_cards += size;
  }
  f.score = f.free_cards > 0 ? static_cast<double>(f.stranded_cards) / f.free_cards : 0.0;
  return f;
}

Fragmentation CombineFragmentation(std::span<const Fragmentation> nodes) {
  Fragmentation total;
  for (const Fragmentation& f : nodes) {
    total.free_cards += f.free_cards;
    total.stranded_cards += f.stranded_cards;
    total.largest_free_linked = std::max(total.largest_free_linked, f.largest_free_linked);
  }
  total.score = total.free_cards > 0 ? static_cast<double>(total.stranded_cards) / total.free_cards : 0.0;
  return total;
}

}  // namespace hyperaccel::placement
