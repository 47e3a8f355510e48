// The bridge's decisions, as pure functions of plain values: does a task fit a node (predicate),
// how good is each node for it (prioritize), which tasks to evict (preemptable / reclaimable).
// The rules are documented in docs/volcano-bridge.md ("Decision rules"); keep the two in step.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/bridge/wire.h"
#include "hyperaccel/placement/annotation.h"
#include "hyperaccel/placement/placement.h"

namespace hyperaccel::bridge {

using placement::Mask;

// A decoded `hyperaccel.ai/topology` annotation. Shared (read-only) by every node and session
// that carries the same annotation text.
struct Topology {
  placement::CardGraph graph;
  Mask free = 0;     // healthy and not allocated, as the node agent reported
  Mask healthy = 0;  // healthy cards
  // ShapeOf(graph): equal for nodes whose card graphs are the same up to card IDs and serials, so
  // placement answers computed for one serve them all. 0 = unknown (nothing is shared).
  uint64_t shape = 0;
};

// Fingerprint of everything placement looks at (links, health, NUMA, PCIe switches; not the IDs
// or serials). Never 0.
uint64_t ShapeOf(const placement::CardGraph& graph);

// One node's cards as the bridge sees them at the time of a call.
struct NodeCards {
  std::string name;
  std::string link_domain;  // tier labels; "" when absent
  std::string rack;
  std::string idc;
  std::shared_ptr<const Topology> topology;  // null: the node is judged by counts alone
  Mask free = 0;                             // with a topology: cards a new task may get
  int free_count = 0;                        // free cards (popcount(free) with a topology)
  int capacity = 0;  // healthy cards: what the node could give with nothing else running
  // Cards of the node's link domain (every node with its link_domain label, this one included):
  // busy and all. 0 / 0 when not known; set for single pods only (SessionState::AddDomainLoad).
  int domain_busy = 0;
  int domain_cards = 0;
};

// What a task asks for.
struct TaskNeed {
  int cards = 0;
  bool require_linked = false;
  bool spot = false;
};

// Volcano predicate codes (reference/volcano.md §1.6).
inline constexpr int kPass = 0;
inline constexpr int kUnschedulable = 2;         // evicting could help
inline constexpr int kUnschedulableForever = 3;  // never fits on this node

struct PredicateDecision {
  int code = kPass;
  std::string reason;  // "" when the task fits
};

PredicateDecision DecidePredicate(const TaskNeed& need, const NodeCards& node, std::string_view resource);

// Delay scheduling for gang locality (Zaharia et al., EuroSys '10): a gang small enough for one
// link domain may wait up to a bound for a domain with room for all of it, instead of starting
// across domains as soon as the cluster has room; the hold never delays it by more than the bound.
// Per job (annotation hyperaccel.ai/link-domain-wait) or for every gang (the bridge's
// --link-domain-wait-seconds). docs/volcano-bridge.md, "Link-domain wait".
struct DomainHold {
  double wait_s = 0;  // how long the gang may be held (<= 0: never)
  // How long it has been held: since the first time the hold failed a node for it while the
  // cluster had room for all of its unplaced tasks (0 before that).
  double age_s = 0;
  int gang_tasks = 0;  // tasks of the job that request cards (placed or not)
  int unplaced = 0;    // of those, tasks without a node yet, this one included
  // Most tasks of this size one link domain of the cluster could hold with nothing running.
  int largest_domain_slots = 0;
  std::string node_domain;             // the node's link domain ("" when unlabelled)
  int node_domain_slots = 0;           // tasks of this size its domain can take now
  std::set<std::string> gang_domains;  // link domains of the gang's placed tasks
};

// The wait of gangs that do not choose their own (the bridge's --link-domain-wait-seconds and
// hyperaccel-sim's --gang-domain-wait-s by default): long enough to catch a domain that frees
// within a scheduling minute, short enough that on the measured workloads no wait target moved
// (docs/simulator-metrics.md, "Link-domain wait").
inline constexpr double kDefaultLinkDomainWaitS = 60;

// Whether the hold applies to the task at all (a gang that fits one domain, still inside its
// bound); when it does not, the predicate is DecidePredicate's alone.
bool HoldApplies(const DomainHold& hold);

// With the hold applying: passes a node whose link domain already holds the gang's placed tasks,
// or (nothing placed yet) whose domain can take every unplaced task now; otherwise
// kUnschedulable with the reason. Call only when HoldApplies.
PredicateDecision DecideDomainHold(const DomainHold& hold);

// The cards the device plugin would give this task on this node now (placement::ScoreNode's
// prediction); 0 for count-only nodes or when the task does not fit.
Mask PredictCards(const TaskNeed& need, const NodeCards& node);

// Removes `count` cards from `node.free` as if a task of that size had just been given them
// (used for allocations Volcano knows about and the annotation does not yet show).
void TakeCards(NodeCards& node, int count);

// Where the job's other tasks are (placed or tentatively allocated) and how many are left.
struct GangView {
  std::set<std::string> domains;
  std::set<std::string> racks;
  std::set<std::string> idcs;
  int remaining = 1;  // tasks of the job still to place, the current one included
};

// 0..100 from placement scoring, before gang locality.
double BaseScore(const TaskNeed& need, const NodeCards& node);

// Scores (0..100 × weight) for every node the task fits; nodes it does not fit are left out.
// A single pod (no placed gang member, `gang.remaining` <= 1) on nodes whose domain load is known
// keeps BaseScore's whole point and, inside it, ranks by half the share of busy cards in the
// node's link domain plus half BaseScore's fraction (the node left fullest), so that single pods
// fill link domains already in use and leave whole domains to gangs.
std::vector<NodeScore> DecidePrioritize(const TaskNeed& need, const std::vector<NodeCards>& nodes,
                                        const GangView& gang, double weight);

// Preemptable / reclaimable.
inline constexpr int kVoteAbstain = 0;
inline constexpr int kVotePermit = 1;
inline constexpr int kVoteReject = -1;

struct Candidate {
  int cards = 0;
  int64_t priority = 0;
};

struct VictimDecision {
  int status = kVoteAbstain;
  std::vector<size_t> chosen;  // indexes into the candidates, in candidate order
  std::string reason;
};

VictimDecision DecideVictims(const TaskNeed& evictor, const NodeCards& node,
                             const std::vector<Candidate>& candidates);

}  // namespace hyperaccel::bridge
