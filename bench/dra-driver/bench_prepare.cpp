// Claim preparation benchmarks (the kubelet side of hyperaccel-dra-driver):
//   BM_Prepare8CardArc   NodePrepareResources work for one claim of an 8-card arc: GET of the
//                        claim from the in-process API-server emulator, device mapping, CDI spec
//                        written and fsynced, checkpoint written and fsynced twice (started,
//                        completed). Each iteration is followed (untimed) by Unprepare. Arg:
//                        0 = state on disk (ext4 or what the temp dir is), 1 = on tmpfs (/dev/shm).
//   BM_PrepareRepeat     a repeated Prepare of a completed claim (no API call, spec present).
//   BM_DurableWrite      one WriteFileDurable of 1 KiB on disk: the fsync floor (Prepare does two).
// Reports p50/p99 of the timed part in microseconds (target: p99 < 5 ms, ARCHITECTURE.md §6).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <utility>
#include <vector>

#include "../latency_counters.h"
#include "../ring_links.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/dra_driver/claim_preparer.h"
#include "hyperaccel/kube/client.h"
#include "hyperaccel/kube/resource.h"
#include "hyperaccel/testing/apiserver_emulator.h"

namespace {

namespace dra = hyperaccel::dra;
namespace hw = hyperaccel::hw;
using hyperaccel::dra::Json;

hw::Inventory Ring8() {
  hw::Inventory inv;
  inv.node_name = "node-1";
  for (int i = 0; i < 8; ++i) {
    hw::Card c;
    char id[32];
    std::snprintf(id, sizeof id, "0000:%02x:00.1", 0x10 + i);
    c.id = id;
    c.serial = "SN" + std::to_string(i);
    c.product = "ALVEO-U55C";
    c.render_node = "/dev/dri/renderD" + std::to_string(128 + i);
    c.numa_node = i % 2;
    inv.cards.push_back(c);
  }
  hyperaccel::bench::LinkCardsInRing(inv);
  return inv;
}

struct Fixture {
  hyperaccel::testing::ApiServerEmulator api;
  std::unique_ptr<hyperaccel::kube::Client> client;
  dra::PoolState pool;
  std::string dir;
  std::unique_ptr<dra::CdiClaimPreparer> preparer;
  dra::ClaimRef ref;
  bool ok = false;

  explicit Fixture(bool tmpfs) {
    hyperaccel::log::SetLevel(hyperaccel::log::Level::kWarn);
    if (!api.Start().ok()) return;
    hyperaccel::kube::ClusterConfig c;
    c.server = api.url();
    auto cl = hyperaccel::kube::Client::Create(c);
    if (!cl.ok()) return;
    client = std::move(cl).value();
    std::string tmpl = (tmpfs ? std::string("/dev/shm") : std::filesystem::temp_directory_path().string()) +
                       "/dra-prep-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return;
    dir = tmpl;
    dra::SliceOptions s;
    s.node_name = "node-1";
    pool.Set(Ring8(), s);
    dra::PreparerOptions o;
    o.node_name = "node-1";
    o.cdi_dir = dir + "/cdi";
    o.checkpoint_path = dir + "/plugin/checkpoint.json";
    o.mount_xrt = true;
    preparer = std::make_unique<dra::CdiClaimPreparer>(o, dra::KubeClaimGetter(*client), pool.Provider());
    Json claim = {
        {"apiVersion", "resource.k8s.io/v1"},
        {"kind", "ResourceClaim"},
        {"metadata", {{"name", "ring"}, {"namespace", "default"}}},
        {"spec",
         {{"devices",
           {{"requests", {{{"name", "ring"}, {"exactly", {{"deviceClassName", "fpga.hyperaccel.ai"}}}}}}}}}}};
    auto created = client->Create(hyperaccel::kube::ResourceClaimsPath("default"), claim);
    if (!created.ok()) return;
    Json obj = *created;
    obj["status"] = {{"allocation",
                      {{"devices",
                        {{"results",
                          {{{"request", "ring"},
                            {"driver", dra::kDriverName},
                            {"pool", "node-1"},
                            {"device", "arc8-0"}}}}}}}}};
    if (!client->Replace(hyperaccel::kube::ResourceClaimStatusPath("default", "ring"), obj).ok()) return;
    ref = {"default", "ring", (*created)["metadata"]["uid"].get<std::string>()};
    ok = true;
  }
  ~Fixture() {
    preparer.reset();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;
};

void BM_Prepare8CardArc(benchmark::State& state) {
  Fixture f(state.range(0) != 0);
  if (!f.ok) {
    state.SkipWithError("set-up failed");
    return;
  }
  std::vector<double> us;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = f.preparer->Prepare({f.ref});
    const auto t1 = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(secs);
    us.push_back(secs * 1e6);
    if (!r[f.ref.uid].error.empty()) {
      state.SkipWithError(r[f.ref.uid].error.c_str());
      return;
    }
    if (!f.preparer->Unprepare({f.ref})[f.ref.uid].empty()) {
      state.SkipWithError("unprepare failed");
      return;
    }
  }
  hyperaccel::bench::ReportLatency(state, std::move(us));
}
BENCHMARK(BM_Prepare8CardArc)
    ->Arg(0)
    ->Arg(1)
    ->ArgNames({"tmpfs"})
    ->UseManualTime()
    ->Iterations(300)
    ->Unit(benchmark::kMicrosecond);

void BM_PrepareRepeat(benchmark::State& state) {
  Fixture f(false);
  if (!f.ok || !f.preparer->Prepare({f.ref})[f.ref.uid].error.empty()) {
    state.SkipWithError("set-up failed");
    return;
  }
  std::vector<double> us;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = f.preparer->Prepare({f.ref});
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(secs);
    us.push_back(secs * 1e6);
    benchmark::DoNotOptimize(r);
  }
  hyperaccel::bench::ReportLatency(state, std::move(us));
}
BENCHMARK(BM_PrepareRepeat)->UseManualTime()->Iterations(2000)->Unit(benchmark::kMicrosecond);

// The floor under BM_Prepare8CardArc on disk: one durable write (file fsync, rename, directory
// fsync) of a checkpoint-sized file; Prepare does two.
void BM_DurableWrite(benchmark::State& state) {
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/dra-prep-fsync-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  const std::string content(1024, 'x');
  std::vector<double> us;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto st = dra::WriteFileDurable(tmpl + "/checkpoint.json", content);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(secs);
    us.push_back(secs * 1e6);
    if (!st.ok()) {
      state.SkipWithError(st.message().c_str());
      break;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  hyperaccel::bench::ReportLatency(state, std::move(us));
}
BENCHMARK(BM_DurableWrite)->UseManualTime()->Iterations(300)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
