// libFuzzer target for the trace parser, then a short simulation of whatever it accepted under
// every policy, so any trace the parser lets through is also safe for the engine.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "hyperaccel/sim/cluster.h"
#include "hyperaccel/sim/engine.h"
#include "hyperaccel/sim/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const hyperaccel::sim::Cluster* cluster = [] {
    hyperaccel::sim::ClusterConfig config;
    config.nodes = 4;
    config.nodes_per_domain = 2;
    config.nodes_per_rack = 4;
    return new hyperaccel::sim::Cluster(hyperaccel::sim::Cluster::Create(config).value());
  }();
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  auto jobs = hyperaccel::sim::ParseTrace(in, "fuzz.csv");
  if (!jobs.ok() || jobs->size() > 64) return 0;
  for (auto policy : hyperaccel::sim::AllPolicies()) {
    hyperaccel::sim::SimOptions options;
    options.policy = policy;
    options.samples = 8;
    (void)hyperaccel::sim::Simulate(*cluster, *jobs, options);
  }
  return 0;
}
