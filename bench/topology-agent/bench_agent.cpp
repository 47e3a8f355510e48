// Topology-agent benchmarks against the API-server emulator (running in a forked child process):
//   BM_ReconcileUnchanged       API requests and writes per node reconcile when nothing changed
//                               (target: zero writes; unforced reconciles send nothing at all)
//   BM_ConvergeHyperNodes/N     direct-mode writer: time to create the HyperNodes of N nodes from
//                               nothing (4 nodes per link domain, 20 domains per rack, 2 IDCs)
//   BM_ConvergeSteady/N         the same writer when everything is already converged (1 list)
//   BM_AgentResidentMemory      resident memory of this process after a direct-mode agent has
//                               run against N nodes (the emulator lives in the child)
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "../ring_links.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/metrics.h"
#include "hyperaccel/placement/names.h"
#include "hyperaccel/testing/apiserver_emulator.h"
#include "hyperaccel/topology_agent/agent.h"

namespace {

using namespace hyperaccel;
using kube::Json;

std::string g_server;

std::unique_ptr<kube::Client> NewClient() {
  kube::ClusterConfig c;
  c.server = g_server;
  auto r = kube::Client::Create(c);
  if (!r.ok()) std::abort();
  return std::move(*r);
}

hw::Inventory Inventory(const std::string& node, int n) {
  hw::Inventory inv;
  inv.node_name = node;
  inv.facts.xrt_version = "2.13.0";
  for (int i = 0; i < n; ++i) {
    hw::Card c;
    char id[32];
    std::snprintf(id, sizeof(id), "0000:%02x:00.1", 0x3b + i);
    c.id = id;
    c.serial = node + "-C" + std::to_string(i);
    c.shell = "xilinx_u55c_gen3x16_xdma_base_3";
    c.product = "ALVEO-U55C";
    c.numa_node = i / 4;
    inv.cards.push_back(c);
  }
  hyperaccel::bench::LinkCardsInRing(inv);
  return inv;
}

std::string NodeName(int i) {
  char b[32];
  std::snprintf(b, sizeof(b), "lpu-node-%04d", i);
  return b;
}

// Creates `n` nodes carrying tier labels (idempotent).
void EnsureNodes(kube::Client& c, int n) {
  auto list = c.List(agent::kNodesPath);
  if (list.ok() && static_cast<int>((*list)["items"].size()) >= n) return;
  for (int i = 0; i < n; ++i) {
    std::string idc = i < n / 2 ? "dc1" : "dc2";
    Json node = {{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata",
                  {{"name", NodeName(i)},
                   {"labels",
                    {{names::kLabelLinkDomain, "d" + std::to_string(i / 4)},
                     {names::kLabelRack, idc + ".r" + std::to_string(i / 80)},
                     {names::kLabelIdc, idc}}}}}};
    (void)c.Create(agent::kNodesPath, node);
  }
}

void DeleteOurHyperNodes(kube::Client& c) {
  auto list =
      c.List(agent::kHyperNodesPath, std::string(names::kManagedByLabel) + "=" + names::kManagedByValue);
  if (!list.ok()) return;
  for (const auto& h : (*list)["items"]) {
    (void)c.Delete(std::string(agent::kHyperNodesPath) + "/" + h["metadata"]["name"].get<std::string>());
  }
}

void BM_ReconcileUnchanged(benchmark::State& state) {
  auto c = NewClient();
  (void)c->Create(agent::kNodesPath, {{"metadata", {{"name", "bench-node"}}}});
  auto inv = Inventory("bench-node", 8);
  agent::NodePublisher pub(c.get(), {}, nullptr);
  (void)pub.Reconcile(inv, {}, true);
  bool forced = state.range(0) != 0;
  uint64_t before = c->stats().Total(), writes_before = c->stats().Writes();
  for (auto _ : state) {
    auto r = pub.Reconcile(inv, {}, forced);
    if (!r.ok() || *r) state.SkipWithError("unexpected write or error");
  }
  double n = static_cast<double>(state.iterations());
  state.counters["requests_per_reconcile"] = static_cast<double>(c->stats().Total() - before) / n;
  state.counters["writes_per_reconcile"] = static_cast<double>(c->stats().Writes() - writes_before) / n;
  state.SetLabel(forced ? "forced (resync: one GET)" : "unforced (steady state)");
}
BENCHMARK(BM_ReconcileUnchanged)->Arg(0)->Arg(1);

void BM_ConvergeHyperNodes(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  auto c = NewClient();
  EnsureNodes(*c, n);
  agent::NodeTierCache cache(c.get());
  (void)cache.Relist();
  auto want = agent::BuildHyperNodes(cache.Snapshot());
  agent::HyperNodeWriter writer(c.get());
  int created = 0;
  for (auto _ : state) {
    state.PauseTiming();
    DeleteOurHyperNodes(*c);
    state.ResumeTiming();
    auto s = writer.Converge(want);
    if (!s.ok()) state.SkipWithError(s.status().message().c_str());
    created = s.ok() ? s->created : 0;
  }
  state.counters["hypernodes"] = static_cast<double>(want.size());
  state.counters["created"] = created;
}
BENCHMARK(BM_ConvergeHyperNodes)->Arg(1000)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_ConvergeSteady(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  auto c = NewClient();
  EnsureNodes(*c, n);
  agent::NodeTierCache cache(c.get());
  (void)cache.Relist();
  auto want = agent::BuildHyperNodes(cache.Snapshot());
  agent::HyperNodeWriter writer(c.get());
  (void)writer.Converge(want);
  uint64_t writes = c->stats().Writes();
  for (auto _ : state) {
    auto s = writer.Converge(want);
    if (!s.ok()) state.SkipWithError(s.status().message().c_str());
  }
  state.counters["writes"] = static_cast<double>(c->stats().Writes() - writes);
}
BENCHMARK(BM_ConvergeSteady)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_AgentResidentMemory(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  auto c = NewClient();
  EnsureNodes(*c, n);
  (void)c->Create(agent::kNodesPath, {{"metadata", {{"name", "bench-node"}}}});
  for (auto _ : state) {
    agent::AgentOptions o;
    o.hypernodes = "direct";
    o.poll_interval_s = 0.05;
    o.lease_duration_s = 2;
    o.lease_renew_deadline_s = 1.5;
    o.lease_retry_period_s = 0.1;
    o.identity = "bench";
    agent::AgentDeps deps;
    auto inv = Inventory("bench-node", 8);
    deps.scan = [inv]() -> Result<hw::Inventory> { return inv; };
    deps.cluster.server = g_server;
    auto a = agent::Agent::Create(o, std::move(deps));
    if (!a.ok()) {
      state.SkipWithError(a.status().message().c_str());
      break;
    }
    (*a)->Start();
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end && (*a)->converges() < 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    state.counters["rss_mib"] = static_cast<double>(metrics::ResidentBytes()) / (1 << 20);
    state.counters["converges"] = static_cast<double>((*a)->converges());
    (*a)->Stop();
  }
}
BENCHMARK(BM_AgentResidentMemory)->Arg(1000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  // The emulator runs in a child process, forked before any thread exists.
  int ready[2];
  int quit[2];
  if (pipe(ready) != 0 || pipe(quit) != 0) return 1;
  pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    close(quit[1]);
    testing::ApiServerEmulator emu;
    emu.SetEventWindow(200000);
    if (!emu.Start().ok()) _exit(1);
    int port = emu.port();
    if (write(ready[1], &port, sizeof(port)) != sizeof(port)) _exit(1);
    char b;
    while (read(quit[0], &b, 1) > 0) {
    }
    emu.Stop();
    _exit(0);
  }
  close(ready[1]);
  close(quit[0]);
  int port = 0;
  if (read(ready[0], &port, sizeof(port)) != sizeof(port)) return 1;
  g_server = "http://127.0.0.1:" + std::to_string(port);
  log::SetLevel(log::Level::kWarn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  close(quit[1]);
  waitpid(child, nullptr, 0);
  return 0;
}
