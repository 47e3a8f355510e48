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
  // Mask of the given IDs; error naming the first unknown ID or one beyond the first kMaxCards.
  Result<Mask> MaskOf(std::span<const std::string> ids) const;
  std::vector<std::string> IdsOf(Mask m) const;  // ascending index order
};

// Builds the graph from an inventory. Only links whose both ends are cards of this node and whose
// state is up count as edges. At most kMaxCards cards (more is an error).
Result<CardGraph> GraphFromInventory(const hw::Inventory& inventory);

// What the chosen set scores on each level of the lexicographic objective. Sets are compared level
// by level, the first difference decides (docs/placement.md has the pictures):
//
//   (1) components asc      -- linked sets the chosen cards fall into (1 == `connected`); a split
//                              answer happens only when must_include or the free cards force it
//   (2) ordered desc        -- a Hamiltonian path through the chosen cards exists over up links
//   (3) numa_nodes asc      -- distinct NUMA nodes touched (-1 "unknown" is one value)
//       pcie_switches asc   -- distinct PCIe switch groups touched; a card with group -1 (behind no
//                              switch) counts as a group of its own
//   (4) largest_free_after desc, free_components_after asc
//                           -- over the cards left free: (request.available & healthy) minus the
//                              chosen, linked by up links
//   (5) cycle desc          -- preference only: the walk closes into a ring (k >= 3)
//   tie-break               -- the lexicographically smallest ascending list of card indices
//                              (equivalently: the lowest index where two sets differ is chosen)
//
// Unhealthy cards are never chosen and never count as free.
struct Score {
  bool connected = false;         // (1) the chosen cards form one connected set over up links
  int components = 0;             // (1) connected sets the chosen cards fall into (1 when connected)
  bool ordered = false;           // (2) they can be walked as a path (or cycle) in link order
  bool cycle = false;             //     ... and the walk closes into a ring
  int numa_nodes = 0;             // (3) distinct NUMA nodes touched (fewer is better)
  int pcie_switches = 0;          //     distinct PCIe switch groups touched (fewer is better)
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
  bool exact = false;  // the search proved this set optimal (false: heuristic answer)
};

// Chooses exactly `size` cards containing `must_include`. Exact for graphs of up to 16 cards,
// heuristic above. Errors: size < 1 or > available, must_include not within available, more
// must_include cards than size. Unhealthy cards are never chosen, even when listed as available.
Result<Choice> Choose(const CardGraph& graph, const Request& request);

// How Choose searches. kAuto: exhaustive when the graph has at most kExactCards cards, or when the
// enumeration of candidate sets stays within a fixed budget; heuristic otherwise. kExact: always
// exhaustive (exponential; tests and gap measurement only). kHeuristic: always the heuristic
// (greedy growth from every seed plus swap-based local improvement).
enum class Method { kAuto, kExact, kHeuristic };
inline constexpr int kExactCards = 16;

// Choose with an explicit search method; same contract and errors as Choose.
Result<Choice> ChooseWith(const CardGraph& graph, const Request& request, Method method);

// Scores an arbitrary set `chosen` against the objective above, as if it were chosen from
// `available` (unhealthy cards are dropped from `available`). `chosen` may contain any cards.
Score Evaluate(const CardGraph& graph, Mask available, Mask chosen);

// Compares two scores on the objective levels (1)..(5); the index tie-break is not included.
// Negative when `a` is better, positive when `b` is better, 0 when equal.
int CompareScores(const Score& a, const Score& b);

// The cards of `cards` in link order: the lexicographically smallest Hamiltonian cycle (starting
// at the lowest index) when one exists (k >= 3), else the lexicographically smallest Hamiltonian
// path; otherwise each linked part (by lowest index) walked depth-first, lowest neighbour first.
std::vector<int> LinkOrder(const CardGraph& graph, Mask cards);

// ---- Link domains and linked arcs (what the DRA driver publishes) -----------------------------

// One link domain of a node: a set of cards connected by up links, in link order (LinkOrder).
// Health does not matter here: an unhealthy card stays in its domain (the caller decides what to
// do with it), so arcs keep their names while a card is sick.
struct LinkDomain {
  int index = 0;           // 0.. in order of the lowest card index
  Mask cards = 0;          // members
  std::vector<int> order;  // members in link order
  bool ring = false;       // at least 3 cards and the link order closes (last linked to first)
};

// The link domains of a graph, ordered by their lowest card index. Every card is in exactly one
// domain (a card without links is a domain of one).
std::vector<LinkDomain> LinkDomains(const CardGraph& graph);

// Which contiguous arcs to offer: every start position (a ring wraps around), or only aligned
// ones (start a multiple of the size, no wrap), so that small requests cannot shred a domain.
enum class ArcAlignment { kAll, kAligned };

// A contiguous, link-ordered run of `size` cards of one domain, starting at `start` (position in
// the domain's link order). Consecutive cards of `cards` are linked (and for a ring arc that wraps,
// so are the last and first positions of the domain).
struct Arc {
  int domain = 0;          // LinkDomain::index
  int size = 0;            // k >= 2
  int start = 0;           // position in the domain's order
  std::vector<int> cards;  // card indices, in link order
  Mask mask = 0;
};

// The arcs of every domain for each size in `sizes` (sizes < 2 and sizes larger than a domain are
// skipped; a size equal to a ring's length gives one arc, start 0). Ordered by domain, then by the
// order of `sizes`, then by start. Runs of the link order whose consecutive cards are not linked
// (a domain without a Hamiltonian path) are not arcs and are left out.
std::vector<Arc> LinkedArcs(const CardGraph& graph, std::span<const int> sizes, ArcAlignment alignment);

// What a scheduler without scoring does with these arcs: the first arc of `size` cards (in the
// order LinkedArcs returns them) whose cards are all in `free`. Nullopt when none fits.
std::optional<Arc> FirstFitArc(std::span<const Arc> arcs, Mask free, int size);

// Human table and JSON document for `hyperaccel-topology-agent plan`: the chosen cards in link
// order with serial / NUMA / switch, the score breakdown and the explanation (or the error).
std::string FormatPlanTable(const CardGraph& graph, const Request& request, const Result<Choice>& choice);
std::string FormatPlanJson(const CardGraph& graph, const Request& request, const Result<Choice>& choice);

// A link between two cards of one node, by their index in the node's card list.
struct LinkCell {
  size_t a = 0;
  size_t b = 0;
  hw::LinkState state = hw::LinkState::kUnknown;
};

// The "Links" matrix of `show` and `kubectl hyperaccel cards`: a row and a column per card (C0,
// C1, ...), each cell the state of the link between the pair (UP, DN, MM, ??; the better one when
// both ports of a pair are cabled), X on the diagonal, then the legend. Cells out of range are
// ignored.
std::string FormatLinkMatrix(size_t cards, const std::vector<LinkCell>& links);

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

// Scores a node for one task from the same objective Choose() uses (`predicted` is Choose()'s
// answer for `size` cards out of the healthy free cards). `fits` only counts cards; when
// `require_linked` is set and no free linked set of `size` exists, the score is 0 (fits_linked
// false). Otherwise, with fill = size / (cards in the free linked sets the answer lands in):
//   regular task, linked answer:   50 + round(30 * fill) + 10 if ordered + 5 if one NUMA node
//                                  + 5 if one PCIe switch group                     (51..100)
//   regular task, split answer:    1 + round(29 * fill / components)                (1..30)
//   spot task (preemptable):       1 + round(49 * fragmentation score) + round(50 * fill)
// so a task that exactly fills a free linked set beats one that cuts into a bigger set (best fit,
// big sets stay free for big jobs), and spot tasks go where the free cards are already stranded.
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

// `sizes` are the common request sizes (default 2, 4, 8). Free = `free` & healthy. A card is
// stranded when its free linked set has fewer cards than the smallest size above 1 (a connected
// set of m cards contains a connected set of every size up to m through each of its cards).
Fragmentation NodeFragmentation(const CardGraph& graph, Mask free, std::span<const int> sizes = {});

// Sums node measures; score is stranded / free over the whole cluster.
Fragmentation CombineFragmentation(std::span<const Fragmentation> nodes);

}  // namespace hyperaccel::placement
