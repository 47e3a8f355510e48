// Metrics users feel, computed from what a simulation recorded: waits by pod size and for gangs
// against single pods, card-weighted waits, slowdowns; and FGD's expected fragmentation (Weng et
// al., ATC'23), which both the `fgd` policy and the fill experiment use. Pure functions of plain
// values; docs/simulator-metrics.md defines each number.
#pragma once

#include <array>
#include <span>
#include <utility>
#include <vector>

#include "hyperaccel/placement/placement.h"
#include "hyperaccel/sim/workload.h"

namespace hyperaccel::sim {

// Linear interpolation between the closest ranks (p in 0..1); 0 for no values.
double Percentile(std::vector<double> values, double p);
// The smallest value whose cumulative weight (values ascending) reaches p x the total weight
// (p in 0..1); 0 for no values or no weight.
double WeightedPercentile(std::vector<std::pair<double, double>> value_weight, double p);

struct WaitStats {
  int jobs = 0;
  double mean_s = 0;
  double p95_s = 0;
  double p99_s = 0;
};

// Pod size classes by cards per task: 1, 2, 3-4, 5-8, more than 8.
inline constexpr int kSizeClasses = 5;
int SizeClass(int cards_per_task);
const char* SizeClassName(int size_class);

struct UserMetrics {
  std::array<WaitStats, kSizeClasses> by_size;  // started jobs by cards per task
  WaitStats single;                             // started jobs of one pod
  WaitStats gang;                               // started jobs of two pods or more
  // Every card a job asked for weighs the same: mean = sum(wait x cards) / sum(cards), with cards
  // = tasks x cards per task; p95 and p99 are WeightedPercentile with those weights.
  WaitStats card_weighted;
  double slowdown_mean = 0;  // (wait + run) / run over started jobs
  double slowdown_p95 = 0;
};

// `start_s` and `run_s` are per job in the order of `jobs` (a start < 0: never started).
UserMetrics ComputeUserMetrics(const std::vector<JobSpec>& jobs, std::span<const double> start_s,
                               std::span<const double> run_s);

// The workload's pod sizes: shares[k] = pods of k cards / all pods, k = 0..placement::kMaxCards
// (a job of `tasks` pods counts `tasks` times).
std::vector<double> PodSizeShares(const std::vector<JobSpec>& jobs);

// FGD's fragmentation of a node measured against the workload: the free cards a pod drawn from
// the workload's pod sizes could not use, in expectation. Counting cards only (what FGD sees):
// a pod of k cards cannot use any of a node's f free cards when f < k.
class ExpectedFragmentation {
 public:
  ExpectedFragmentation(std::span<const double> shares, int cards_per_node);
  // Expected unusable free cards on a node with `free_cards` free cards (0..cards_per_node).
  double OfCount(int free_cards) const;
  // The same for pods that need a linked set: a free card is unusable by a pod of k cards when
  // its free linked set (connected component of the free cards) has fewer than k cards.
  double OfLinked(const placement::CardGraph& graph, placement::Mask free) const;

 private:
  std::vector<double> shares_;
  std::vector<double> by_count_;
};

// The fill experiment's outcome (engine.h: SimulateFill).
struct FillResult {
  bool ran = false;
  int consecutive_failures = 0;  // the stop rule
  int draws = 0;                 // jobs drawn
  int placed = 0;                // jobs placed
  int allocated_cards = 0;       // busy cards at the end
  int free_cards = 0;
  double allocated_rate = 0;  // allocated cards / all cards
  // Allocated cards / all cards when the first placement failed (1 when none failed): how full
  // the cluster got before a job drawn from the workload could not be placed.
  double first_failure_allocated_rate = 1;
  // FGD's measure (below) at the first failure, as a share of all cards; 0 when none failed.
  double first_failure_unallocatable_rate = 0;
  double first_failure_unallocatable_linked_rate = 0;
  // FGD's measure at the end: expected free cards a pod drawn from the workload cannot use,
  // counting cards (ExpectedFragmentation::OfCount) and needing a linked set (OfLinked), summed
  // over the nodes; and as a share of all cards.
  double unallocatable_cards = 0;
  double unallocatable_linked_cards = 0;
  double unallocatable_rate = 0;
  double unallocatable_linked_rate = 0;
};

}  // namespace hyperaccel::sim
