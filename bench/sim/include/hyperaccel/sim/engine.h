// The discrete-event simulator. Events are job arrivals and completions; after each batch of
// events at one instant a scheduling cycle runs, modelled on Volcano's allocate action:
//   - pending jobs in order of priority (higher first), then arrival, then trace order;
//   - each job is a gang: its tasks are placed one by one into a statement that is committed only
//     when every task found a node, and discarded otherwise (all or nothing);
//   - per task: predicate over the nodes (Volcano's resource check first, then the policy's
//     predicate), scanning from where the previous task stopped and stopping after
//     `nodes to find` feasible nodes (Volcano's adaptive percentage: all nodes up to 100, else
//     max(5 %, 50 % - nodes/125), at least 100), then prioritize, best score wins (ties random);
//   - on the chosen node the device plugin picks the cards.
// Within one cycle free cards only shrink, so a job shape (tasks, cards per task) that failed is
// not tried again in the same cycle. Arrivals alone retry only the new jobs; a completion retries
// the whole queue. Preemption and reclaim actions are not modelled.
//
// Policies (the kubelet's own card choice, used when the plugin states no preference, is
// first-fit by default and random with `kubelet_random`, which is what the kubelet really does:
// it takes devices in Go map order):
//   random      a random feasible node; the kubelet's cards
//   binpack     Volcano binpack on the card resource (fullest feasible node); the kubelet's cards
//   tiers       Volcano network-topology-aware scheduling in soft mode on HyperNode tiers (link
//               domain, rack, IDC) for gangs: HyperNodes of the lowest tier first, the fullest one
//               that can hold the whole gang first, the gang dry-run inside it; binpack inside;
//               the kubelet's cards. Blind to cards and links.
//   extender    our bridge alone (no HyperNodes): the bridge's predicate and prioritize
//               (placement scoring plus gang locality) on the sampled nodes, then the device
//               plugin's linked choice (placement::Choose)
//   fgd         fragmentation gradient descent (Weng et al., ATC'23) on whole cards: each task goes
//               to the feasible node whose expected fragmentation (free cards a pod drawn from the
//               workload's pod sizes could not use) grows least; the kubelet's cards. Blind to
//               links and tiers, like the published scheduler.
//   hyperaccel  our whole stack: the HyperNode tiers the topology agent publishes, as `tiers`, and
//               inside each HyperNode the bridge's predicate and prioritize and the device
//               plugin's choice, as `extender`
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/sim/cluster.h"
#include "hyperaccel/sim/metrics.h"
#include "hyperaccel/sim/workload.h"

namespace hyperaccel::sim {

// kDraAligned / kDraAll: kube-scheduler's DRA allocator over hyperaccel-dra-driver's devices
// (dra_policy.h); selected by name only, not part of AllPolicies().
enum class Policy { kRandom, kBinpack, kTiers, kFgd, kExtender, kHyperaccel, kDraAligned, kDraAll };
const char* PolicyName(Policy p);
Result<Policy> ParsePolicy(std::string_view name);
std::vector<Policy> AllPolicies();

struct SimOptions {
  Policy policy = Policy::kHyperaccel;
  uint64_t seed = 1;            // tie-breaking and the random policy
  double horizon_s = 0;         // stop at this time (0: run until every startable job ran)
  int samples = 200;            // points of the time series over the arrival window
  bool require_linked = false;  // extender, hyperaccel: multi-card pods must get a linked set
  bool kubelet_random = false;  // the kubelet picks cards at random instead of first-fit
  int percentage_of_nodes = 0;  // Volcano --percentage-nodes-to-find; 0 = adaptive
  int min_nodes_to_find = 100;  // Volcano --minimum-feasible-nodes
  // Optional cost model (1 = off): a job runs this many times longer when one of its pods got
  // cards that are not one linked set / when its pods span link domains (the larger applies).
  double unlinked_slowdown = 1;
  double cross_domain_slowdown = 1;
  // hyperaccel: the bridge's link-domain wait (bridge::DecideDomainHold): a gang small enough for
  // one empty link domain waits up to this long (from when the cluster has room for it) for a
  // domain with room, then the soft tiers apply. 0 = off; hyperaccel-sim's command line defaults
  // to the bridge's (bridge::kDefaultLinkDomainWaitS).
  double gang_domain_wait_s = 0;
};

// One point of the time series; utilization and fragmentation are time averages over the
// interval since the previous point, the counts are taken at `t`.
struct Sample {
  double t = 0;
  double utilization = 0;       // busy cards / all cards
  double fragmentation = 0;     // stranded free cards (no free linked neighbour) / free cards
  int pending = 0;              // jobs waiting
  int largest_free_linked = 0;  // the largest free linked set on any node
  // Of the jobs started since the previous point: gangs that fit one link domain and got one
  // (rate; -1 when none started), and the mean wait per pod size class (-1 when none started).
  double gang_fit_domain_rate = -1;
  std::array<double, kSizeClasses> wait_mean_s{-1, -1, -1, -1, -1};
};

struct PolicyResult {
  Policy policy = Policy::kHyperaccel;
  int jobs = 0;
  int started = 0;
  int never_started = 0;    // still pending when the simulation ended
  int infeasible = 0;       // of those: could not fit even in the empty cluster
  int pods = 0;             // pods started
  int multi_card_pods = 0;  // started pods with at least 2 cards
  int linked_pods = 0;      // of those, pods whose cards form one linked set
  int gangs = 0;            // started jobs with at least 2 pods
  int gangs_one_domain = 0;
  int gangs_one_rack = 0;
  int gangs_fit_domain = 0;      // started gangs small enough for one empty link domain
  int gangs_fit_one_domain = 0;  // of those, gangs placed inside one link domain
  // Of the gangs that fit one link domain but were split across domains: how many started at a
  // moment when no link domain had enough free cards (counting cards only) for the whole gang,
  // so keeping them local would have meant waiting.
  int gangs_split_no_domain_room = 0;
  int gangs_fit_rack = 0;           // started gangs small enough for one empty rack
  int gangs_fit_one_rack = 0;       // of those, gangs placed inside one rack
  int slowed_jobs = 0;              // jobs the optional slowdowns made longer
  double linked_rate = 0;           // linked_pods / multi_card_pods
  double gang_domain_rate = 0;      // gangs_one_domain / gangs
  double gang_fit_domain_rate = 0;  // gangs_fit_one_domain / gangs_fit_domain
  double gang_rack_rate = 0;
  double gang_fit_rack_rate = 0;  // gangs_fit_one_rack / gangs_fit_rack
  double wait_mean_s = 0;         // over started jobs
  double wait_p50_s = 0;
  double wait_p95_s = 0;
  double gang_wait_mean_s = 0;  // over started gangs
  // Time averages over the measurement window: from the first to the last arrival or, when every
  // job arrives at once, for the time all the work would take at full utilization.
  double utilization = 0;           // busy cards / all cards
  double fragmentation_mean = 0;    // stranded free cards / free cards, time-weighted over the window
  double end_s = 0;                 // simulated time when the run ended
  double runtime_s = 0;             // wall-clock time of the run
  int64_t scheduling_attempts = 0;  // gang placement attempts (statements)
  std::vector<Sample> series;
  std::vector<double> start_s;  // per job (trace order): when it started, -1 when it never did
  std::vector<double> run_s;    // per job: how long it ran (the cost model included), -1 when it never did
  UserMetrics user;             // waits and slowdowns as users feel them (report.h)
  FillResult fill;              // the fill experiment, when one was run (SimulateFill)
};

// Runs one policy over `jobs` (sorted by arrival). Deterministic for a given seed.
PolicyResult Simulate(const Cluster& cluster, const std::vector<JobSpec>& jobs, const SimOptions& options);

// The fill experiment of FGD (Weng et al., ATC'23): jobs drawn uniformly at random (seeded by
// options.seed only, so every policy sees the same draws) from `jobs` arrive one after the other
// on the empty cluster and never leave; each is placed by options.policy, all or nothing; the run
// stops after `consecutive_failures` failed placements in a row. Jobs that could never fit are not
// drawn. Reports the allocated and the unallocatable free cards at that point.
FillResult SimulateFill(const Cluster& cluster, const std::vector<JobSpec>& jobs, const SimOptions& options,
                        int consecutive_failures);

// Volcano's number of feasible nodes to find for a cluster of `nodes` nodes.
int NodesToFind(int nodes, int percentage, int min_nodes);

}  // namespace hyperaccel::sim
