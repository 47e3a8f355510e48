// hyperaccel-sim: replays a workload through the real placement and bridge code under several
// scheduling policies and reports linked-set rate, gang locality, waits, utilization and
// fragmentation side by side.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "hyperaccel/bridge/decide.h"
#include "hyperaccel/common/cli.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/sim/cluster.h"
#include "hyperaccel/sim/engine.h"
#include "hyperaccel/sim/report.h"
#include "hyperaccel/sim/workload.h"

namespace {

using namespace hyperaccel;

struct Flags {
  std::string trace;
  uint64_t synthetic = 0;
  int jobs = 10000;
  double load = 0.9;
  sim::ClusterConfig cluster;
  std::string policy = "all";
  std::string format = "markdown";
  std::string results;
  std::string write_trace;
  std::string job_log;
  bool require_linked = false;
  double horizon_s = 0;
  int samples = 200;
  int threads = 0;
  uint64_t seed = 0;
  std::string kubelet_cards = "first-fit";
  int percentage_nodes = 0;
  double unlinked_slowdown = 1;
  double cross_domain_slowdown = 1;
  int fill = 0;
  double trace_load = 0;
  double gang_domain_wait_s = bridge::kDefaultLinkDomainWaitS;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "hyperaccel-sim: replay a workload (trace CSV or synthetic LLM mix) through the real placement and\n"
      "Volcano-bridge code and compare scheduling policies (random, binpack, tiers, fgd, extender, "
      "hyperaccel).",
      "hyperaccel-sim"};
  Flags f;
  cli::CommonFlags common;
  cli::AddCommonFlags(app, common, "HYPERACCEL_SIM_");
  const cli::FlagGroup group(app, "Simulation");
  auto* trace = app.add_option("--trace", f.trace,
                               "Trace CSV (job_id,arrival_s,duration_s,tasks,cards_per_task,"
                               "priority,preemptable)")
                    ->check(CLI::ExistingFile);
  auto* synth = app.add_option("--synthetic", f.synthetic, "Generate the synthetic LLM mix with this seed");
  trace->excludes(synth);
  synth->excludes(trace);
  app.add_option("--jobs", f.jobs, "Synthetic: number of jobs")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--load", f.load, "Synthetic: offered load as a share of all cards (1.0 = saturated)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 10.0));
  app.add_option("--trace-load", f.trace_load,
                 "Trace: compress or stretch arrivals so the offered load on this cluster is this share of "
                 "its cards (0 = replay the trace's own times)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--nodes", f.cluster.nodes, "Nodes")->capture_default_str();
  app.add_option("--cards-per-node", f.cluster.cards_per_node, "Cards per node (1..64)")
      ->capture_default_str();
  app.add_option("--intra", f.cluster.intra, "Cabling inside a node: ring, line or mesh")
      ->capture_default_str();
  app.add_option("--numa-nodes", f.cluster.numa_nodes, "NUMA nodes per server")->capture_default_str();
  app.add_option("--nodes-per-domain", f.cluster.nodes_per_domain, "Nodes per link domain (tier 1)")
      ->capture_default_str();
  app.add_option("--nodes-per-rack", f.cluster.nodes_per_rack, "Nodes per rack (tier 2)")
      ->capture_default_str();
  app.add_option("--racks-per-idc", f.cluster.racks_per_idc, "Racks per IDC (tier 3)")->capture_default_str();
  app.add_option("--policy", f.policy,
                 "random, binpack, tiers, fgd, extender, hyperaccel, dra-aligned, dra-all or all")
      ->capture_default_str();
  app.add_option("--kubelet-cards", f.kubelet_cards,
                 "The kubelet's own card choice for the baselines: first-fit or random (the real kubelet "
                 "takes devices in map order)")
      ->capture_default_str()
      ->check(CLI::IsMember({"first-fit", "random"}));
  app.add_option(
         "--percentage-nodes-to-find", f.percentage_nodes,
         "Volcano's --percentage-nodes-to-find (0 = adaptive: max(5, 50 - nodes/125) % above 100 nodes)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  app.add_option("--format", f.format, "Output on stdout: markdown or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"markdown", "json"}));
  app.add_option("--results", f.results,
                 "Also write results.md, results.json, series CSVs and PNG plots here");
  app.add_option("--write-trace", f.write_trace, "Write the workload as a trace CSV (to replay or edit)");
  app.add_option("--job-log", f.job_log,
                 "Write every job's arrival, start and run time under each policy as CSV (for "
                 "bench/sim/wait-attribution.py)");
  app.add_flag("--require-linked", f.require_linked,
               "hyperaccel: multi-card pods require a linked set (hyperaccel.ai/require-linked)");
  app.add_option("--unlinked-slowdown", f.unlinked_slowdown,
                 "Cost model: a job with a pod on unlinked cards runs this many times longer (1 = off)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100.0));
  app.add_option("--cross-domain-slowdown", f.cross_domain_slowdown,
                 "Cost model: a gang spanning link domains runs this many times longer (1 = off)")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 100.0));
  app.add_option("--fill", f.fill,
                 "Also run FGD's fill experiment: jobs drawn from the workload arrive and never leave until "
                 "this many placements in a row fail; reports allocated and unallocatable cards (0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--gang-domain-wait-s", f.gang_domain_wait_s,
                 "hyperaccel: the bridge's link-domain wait (--link-domain-wait-seconds): a gang that fits "
                 "one link domain waits up to this long, once the cluster has room for it, for a domain with "
                 "room before spreading (0 = off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--horizon-s", f.horizon_s,
                 "Stop at this simulated time (0 = until every job that can run ran)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--samples", f.samples, "Time-series points over the arrival window")
      ->capture_default_str()
      ->check(CLI::Range(2, 100000));
  app.add_option("--threads", f.threads, "Policies simulated in parallel (0 = one per core)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--seed", f.seed,
                 "Seed for tie-breaking and the random policy (default: the synthetic seed or 1)");
  CLI11_PARSE(app, argc, argv);
  if (!cli::ApplyCommonFlags(common, "sim")) return 2;
  if (f.trace.empty() && !app.count("--synthetic")) {
    std::cerr << "error: give --trace FILE or --synthetic SEED (see --help)\n";
    return 2;
  }

  auto cluster = sim::Cluster::Create(f.cluster);
  if (!cluster.ok()) {
    std::cerr << "error: " << cluster.status().message() << "\n";
    return 2;
  }
  std::vector<sim::Policy> policies;
  if (f.policy == "all") {
    policies = sim::AllPolicies();
  } else {
    auto p = sim::ParsePolicy(f.policy);
    if (!p.ok()) {
      std::cerr << "error: --policy: " << p.status().message() << "\n";
      return 2;
    }
    policies.push_back(*p);
  }
  if (f.results.find('\'') != std::string::npos) {
    std::cerr << "error: --results: a quote in the directory name is not supported\n";
    return 2;
  }

  sim::RunInfo run;
  std::vector<sim::JobSpec> jobs;
  if (!f.trace.empty()) {
    auto t = sim::ReadTrace(f.trace);
    if (!t.ok()) {
      std::cerr << "error: " << t.status().message() << "\n";
      return 2;
    }
    jobs = std::move(t).value();
    run.workload = "trace " + std::filesystem::path(f.trace).filename().string();
    if (f.trace_load > 0) {
      const double before = sim::OfferedLoad(jobs, cluster->total_cards());
      if (Status s = sim::ScaleArrivalsToLoad(jobs, cluster->total_cards(), f.trace_load); !s.ok()) {
        std::cerr << "error: --trace-load: " << s.message() << "\n";
        return 2;
      }
      char what[128];
      std::snprintf(what, sizeof what, ", arrival times x %.4f for offered load %.2f (was %.2f)",
                    before / f.trace_load, f.trace_load, before);
      run.workload += what;
      run.load = f.trace_load;
    }
    run.seed = f.seed ? f.seed : 1;
  } else {
    sim::SyntheticConfig sc;
    sc.seed = f.synthetic;
    sc.jobs = f.jobs;
    sc.load = f.load;
    sc.cluster_cards = cluster->total_cards();
    sc.max_cards_per_task = f.cluster.cards_per_node;
    jobs = sim::Synthesize(sc);
    char what[96];
    std::snprintf(what, sizeof what, "synthetic LLM mix (seed %llu, offered load %.2f)",
                  static_cast<unsigned long long>(f.synthetic), f.load);
    run.workload = what;
    run.load = f.load;
    run.seed = f.seed ? f.seed : f.synthetic;
  }
  run.jobs = static_cast<int>(jobs.size());
  run.require_linked = f.require_linked;
  if (!f.write_trace.empty()) {
    const auto parent = std::filesystem::path(f.write_trace).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    std::ofstream out(f.write_trace);
    out << sim::FormatTrace(jobs);
    if (!out) {
      std::cerr << "error: cannot write " << f.write_trace << "\n";
      return 1;
    }
  }

  sim::SimOptions options;
  options.seed = run.seed;
  options.horizon_s = f.horizon_s;
  options.samples = f.samples;
  options.require_linked = f.require_linked;
  options.kubelet_random = f.kubelet_cards == "random";
  options.unlinked_slowdown = f.unlinked_slowdown;
  options.cross_domain_slowdown = f.cross_domain_slowdown;
  options.gang_domain_wait_s = f.gang_domain_wait_s;
  run.kubelet_random = options.kubelet_random;
  run.unlinked_slowdown = f.unlinked_slowdown;
  run.cross_domain_slowdown = f.cross_domain_slowdown;
  options.percentage_of_nodes = f.percentage_nodes;
  std::vector<sim::PolicyResult> results(policies.size());
  const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  const size_t threads =
      std::min<size_t>(policies.size(), f.threads > 0 ? static_cast<size_t>(f.threads) : cores);
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (size_t w = 0; w < threads; ++w) {
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < policies.size();) {
        sim::SimOptions o = options;
        o.policy = policies[i];
        results[i] = sim::Simulate(*cluster, jobs, o);
        if (f.fill > 0) results[i].fill = sim::SimulateFill(*cluster, jobs, o, f.fill);
        HA_LOG(kInfo, "policy simulated")
            .kv("policy", sim::PolicyName(policies[i]))
            .kv("jobs", results[i].jobs)
            .kv("seconds", results[i].runtime_s);
      }
    });
  }
  for (auto& t : pool) t.join();

  std::cout << (f.format == "json" ? sim::FormatJson(f.cluster, run, results)
                                   : sim::FormatMarkdown(f.cluster, run, results));
  if (!f.job_log.empty()) {
    const auto parent = std::filesystem::path(f.job_log).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    std::ofstream out(f.job_log);
    out << sim::FormatJobLog(jobs, results);
    if (!out) {
      std::cerr << "error: cannot write " << f.job_log << "\n";
      return 1;
    }
  }
  if (!f.results.empty()) {
    bool plots = false;
    if (Status s = sim::WriteResults(f.results, f.cluster, run, results, &plots); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return 1;
    }
    if (!plots) HA_LOG(kWarn, "gnuplot not found; results written without plots").kv("dir", f.results);
  }
  return 0;
}
