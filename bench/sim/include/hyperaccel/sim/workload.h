// Workloads for the simulator: a trace file (CSV) or a synthetic LLM serving + training mix.
//
// Trace format (CSV, RFC 4180 without quoted fields; '#' starts a comment line):
//   job_id,arrival_s,duration_s,tasks,cards_per_task,priority,preemptable
//   train-17,0,7200,4,8,5,false
// A job is a gang of `tasks` pods of `cards_per_task` cards each, all started together or not at
// all; single-pod jobs have tasks = 1. The header is required; columns may come in any order and
// unknown columns are ignored. Values: job_id non-empty and unique; arrival_s 0..1e12;
// duration_s > 0 and <= 1e12;
// tasks 1..100000; cards_per_task 1..64; priority an integer (higher goes first); preemptable
// true/false/1/0. Rows need not be sorted. Any other value is an error naming the line.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"

namespace hyperaccel::sim {

struct JobSpec {
  std::string id;
  double arrival_s = 0;
  double duration_s = 0;
  int tasks = 1;
  int cards_per_task = 1;
  int64_t priority = 0;
  bool preemptable = false;
};

// Parses a trace; `source` names the input in errors ("trace.csv:12: duration_s: ...").
// The result is sorted by arrival (stable: rows with equal arrival keep file order).
Result<std::vector<JobSpec>> ParseTrace(std::istream& in, std::string_view source);
Result<std::vector<JobSpec>> ReadTrace(const std::string& path);
// The CSV of `jobs` with the header above (durations and arrivals to the millisecond).
std::string FormatTrace(const std::vector<JobSpec>& jobs);

// The synthetic mix. Shapes (share of jobs):
//   serving pods, tasks = 1:       1 card 30 %, 2 cards 20 %, 4 cards 15 %, 8 cards 5 %
//   training / multi-node gangs:   30 %, 2..8 pods (uniform) of 2 (20 %), 4 (50 %) or 8 (30 %) cards
// Durations are log-normal (heavy tail): serving median 20 min, gangs median 90 min, sigma 1.2,
// capped at 7 days. A fifth of the 1- and 2-card serving pods are preemptable batch work
// (priority 1); other serving pods have priority 10, gangs 5. Arrivals are Poisson with the rate
// that makes the offered load (cards x seconds asked for per second) equal `load` x the cluster's
// cards, computed from the generated jobs themselves. Same seed, same jobs.
struct SyntheticConfig {
  uint64_t seed = 1;
  int jobs = 10000;
  double load = 0.9;
  int cluster_cards = 8000;
  int max_cards_per_task = 8;  // shapes above the node size are scaled down to it
};
std::vector<JobSpec> Synthesize(const SyntheticConfig& config);

// Offered load of `jobs` on `cluster_cards` cards: card-seconds asked for / (arrival window x
// cards). 0 when the window is empty (every job arrives at once) or there are no cards.
double OfferedLoad(const std::vector<JobSpec>& jobs, int cluster_cards);

// Compresses or stretches the arrival times of `jobs` (sorted by arrival) around the first arrival
// so that OfferedLoad becomes `load`; durations are kept. Error when the window is empty or `load`
// is not positive.
Status ScaleArrivalsToLoad(std::vector<JobSpec>& jobs, int cluster_cards, double load);

}  // namespace hyperaccel::sim
