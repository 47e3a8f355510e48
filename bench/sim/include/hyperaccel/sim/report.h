// Simulator output: a markdown table, a JSON document (schema hyperaccel.ai/sim/v1, described in
// the README), per-policy time series as CSV and PNG plots drawn by gnuplot.
#pragma once

#include <string>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/sim/cluster.h"
#include "hyperaccel/sim/engine.h"

namespace hyperaccel::sim {

// What was simulated, for the report header and the JSON "run" object.
struct RunInfo {
  std::string workload;  // "synthetic seed 1, load 0.90" or the trace path
  uint64_t seed = 1;
  double load = 0;  // offered load of the synthetic mix (0 for traces)
  int jobs = 0;
  bool require_linked = false;
  bool kubelet_random = false;
  double unlinked_slowdown = 1;
  double cross_domain_slowdown = 1;
};

std::string FormatMarkdown(const ClusterConfig& cluster, const RunInfo& run,
                           const std::vector<PolicyResult>& results);
std::string FormatJson(const ClusterConfig& cluster, const RunInfo& run,
                       const std::vector<PolicyResult>& results);
// time_s,utilization,fragmentation,pending,largest_free_linked,gang_fit_domain_rate,wait_1_s,
// wait_2_s,wait_3_4_s,wait_5_8_s,wait_over_8_s (NaN where nothing started in the interval)
std::string FormatSeriesCsv(const PolicyResult& result);
// Every job under every policy, one line each, in job order then policy order:
// policy,job_id,tasks,cards_per_task,priority,arrival_s,start_s,run_s (start_s and run_s -1 for a
// job that never started; run_s includes the cost model). `results` must come from `jobs`.
// bench/sim/wait-attribution.py reads it.
std::string FormatJobLog(const std::vector<JobSpec>& jobs, const std::vector<PolicyResult>& results);

// Writes results.md, results.json and series-<policy>.csv into `dir` (created when missing) and,
// when gnuplot is on PATH, utilization.png, fragmentation.png, pending.png, locality.png,
// locality-time.png and wait-<size class>.png for each pod size class that ran.
// `plots` is set to whether the PNGs were drawn.
Status WriteResults(const std::string& dir, const ClusterConfig& cluster, const RunInfo& run,
                    const std::vector<PolicyResult>& results, bool* plots);

}  // namespace hyperaccel::sim
