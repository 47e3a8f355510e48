// Placement: which k cards to give, how good a node is for a task, how fragmented a node is.
// Pure functions over plain values: no I/O, no threads, deterministic (same input, same answer),
// so the device plugin (GetPreferredAllocation) and the Volcano bridge (node scoring) agree on
// exactly which cards a node will hand out.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::placement {

inline constexpr int kMaxCards = 64;
using Mask = uint64_t;  // bit i = card index i of a CardGraph

// The card graph of one node: exactly what placement needs.
struct CardGraph {
  std::vector<std::string> ids;      // index -> card ID (user-PF PCI address), sorted ascending
  std::vector<std::string> serials;  // index -> serial (may be empty)
  std::vector<int> numa;             // index -> NUMA node, -1 when unknown
  std::vector<int> pcie_switch;      // index -> closest shared PCIe switch group, -1 when none
  std::vector<bool> healthy;
  std::vector<Mask> adj;  // index -> cards linked to it by at least one link that is up

  int size() const { return static_cast<int>(ids.size()); }
  std::optional<int> IndexOf(std::string_view id) const;
  Mask AllMask() const;
  Mask HealthyMask() const;
  // Mask of the given IDs; error naming the first unknown ID.
  Result<Mask> MaskOf(std::span<const std::string> ids) const;
  std::vector<std::string> IdsOf(Mask m) const;  // ascending index order
};

// Builds the graph from an inventory. Only links whose both ends are cards of this node and whose
// state is up count as edges. At most kMaxCards cards (more is an error).
Result<CardGraph> GraphFromInventory(const hw::Inventory& inventory);

// What the chosen set scores on each level of the lexicographic objective (see README).
struct Score {
  bool connected = false;  // (1) the chosen cards form one connected set over up links
  bool ordered = false;    // (2) they can be walked as a path (or cycle) in link order
  bool cycle = false;      //     ... and the walk closes into a ring
  int numa_nodes = 0;      // (3) distinct NUMA nodes touched (fewer is better)
  int pcie_switches = 0;   //     distinct PCIe switch groups touched (fewer is better)
  int largest_free_after = 0;     // (4) largest linked set left free (larger is better)
  int free_components_after = 0;  //     number of linked sets left free (fewer is better)
  std::string explanation;        // one line, human readable
};

struct Request {
  Mask available = 0;     // cards that may be chosen (healthy and free)
  Mask must_include = 0;  // must be part of the answer (subset of available)
  int size = 0;           // k
};

struct Choice {
  Mask cards = 0;
  std::vector<int> order;  // the k chosen indices in link order (path/cycle when one exists)
  Score score;
};

// Chooses exactly `size` cards containing `must_include`. Exact for graphs of up to 16 cards,
// heuristic above. Errors: size < 1 or > available, must_include not within available, more
// must_include cards than size. Unhealthy cards are never chosen, even when listed as available.
Result<Choice> Choose(const CardGraph& graph, const Request& request);

// ID-based convenience (the kubelet's GetPreferredAllocation speaks IDs): returns the chosen IDs
// in link order. Unknown IDs are an error naming them.
Result<std::vector<std::string>> ChooseIds(const CardGraph& graph, std::span<const std::string> available,
                                           std::span<const std::string> must_include, int size);

// ---- Node scoring for the Volcano bridge -------------------------------------------------------

struct FitRequest {
  int size = 0;                 // cards the task asks for
  bool require_linked = false;  // the task must get a linked set
  bool preemptable = false;     // spot task: prefer already fragmented nodes
};

struct NodeFit {
  bool fits = false;         // enough healthy free cards
  bool fits_linked = false;  // a free linked (connected) set of `size` cards exists
  int score = 0;             // 0..100; 0 when it does not fit
  Mask predicted = 0;        // the cards Choose() would pick for this task on this node
  std::string reason;        // why it does not fit, or what the score reflects
};

NodeFit ScoreNode(const CardGraph& graph, Mask free, const FitRequest& request);

// ---- Fragmentation ----------------------------------------------------------------------------

struct Fragmentation {
  int free_cards = 0;
  int largest_free_linked = 0;  // cards in the largest free linked set
  // Free cards that sit in no free linked set of the smallest common request size that is > 1
  // (they can serve only 1-card pods).
  int stranded_cards = 0;
  double score = 0.0;  // 0 = not fragmented at all, 1 = every free card stranded
};

// `sizes` are the common request sizes (default 2, 4, 8).
Fragmentation NodeFragmentation(const CardGraph& graph, Mask free, std::span<const int> sizes = {});

// Sums node measures; score is stranded / free over the whole cluster.
Fragmentation CombineFragmentation(std::span<const Fragmentation> nodes);

}  // namespace hyperaccel::placement
