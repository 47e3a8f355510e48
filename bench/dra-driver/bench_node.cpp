// The kubelet side of hyperaccel-dra-driver over real unix sockets (NodeServer + the fake kubelet
// of tests/support/kubelet-dra, in one process):
//   BM_RegistrationAfterRestart  NodeServer::Stop, a new NodeServer::Start, until the fake kubelet
//                                (inotify on plugins_registry) has registered it again: the time a
//                                plugin restart costs before the kubelet can call it (target < 1 s).
//   BM_PrepareRoundTrip/claims   NodePrepareResources with a trivial preparer, kubelet to plugin
//                                and back: the gRPC and translation overhead the real preparer
//                                adds its own work to.
// Both report p50/p99/max in microseconds as counters (per-iteration wall time, manual timing).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "../latency_counters.h"
#include "fake_backends.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/dra_driver/node_server.h"
#include "hyperaccel/kubelet_dra/kubelet_dra.h"

namespace {

namespace fs = std::filesystem;
namespace dra = hyperaccel::dra;
using Clock = std::chrono::steady_clock;

struct Dir {
  Dir() : path(fs::temp_directory_path() / ("bench-dra-node-" + std::to_string(::getpid()))) {
    fs::create_directories(path);
  }
  ~Dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  fs::path path;
};

// A NodeServer's options and fake back ends, and the fake kubelet's options, in a fresh kubelet
// directory.
struct Rig {
  Rig() {
    hyperaccel::log::SetLevel(hyperaccel::log::Level::kWarn);
    server.kubelet_dir = dir.path.string();
    kubelet.registry_dir = (dir.path / "plugins_registry").string();
  }
  Dir dir;
  dra::testing::FakePreparer preparer;
  dra::testing::FakeHealth health;
  dra::NodeServerOptions server;
  hyperaccel::kubelet_dra::Options kubelet;
};

void BM_RegistrationAfterRestart(benchmark::State& state) {
  Rig rig;
  hyperaccel::kubelet_dra::FakeKubelet kubelet(rig.kubelet);
  if (!kubelet.Start().ok()) {
    state.SkipWithError("fake kubelet");
    return;
  }
  auto server = std::make_unique<dra::NodeServer>(rig.server, rig.preparer, rig.health);
  if (!server->Start().ok() || !kubelet.WaitRegistered(dra::kDriverName, 1, std::chrono::seconds(10))) {
    state.SkipWithError("first registration");
    return;
  }
  size_t count = 1;
  std::vector<double> us;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    server->Stop();
    server = std::make_unique<dra::NodeServer>(rig.server, rig.preparer, rig.health);
    if (!server->Start().ok()) {
      state.SkipWithError("restart");
      return;
    }
    auto reg = kubelet.WaitRegistered(dra::kDriverName, ++count, std::chrono::seconds(10));
    if (!reg) {
      state.SkipWithError("not registered again");
      return;
    }
    const double took = std::chrono::duration<double, std::micro>(reg->done_at - t0).count();
    state.SetIterationTime(took / 1e6);
    us.push_back(took);
  }
  hyperaccel::bench::ReportLatency(state, std::move(us));
}
BENCHMARK(BM_RegistrationAfterRestart)->Iterations(50)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_PrepareRoundTrip(benchmark::State& state) {
  Rig rig;
  dra::NodeServer server(rig.server, rig.preparer, rig.health);
  hyperaccel::kubelet_dra::FakeKubelet kubelet(rig.kubelet);
  if (!server.Start().ok() || !kubelet.Start().ok() ||
      !kubelet.WaitRegistered(dra::kDriverName, 1, std::chrono::seconds(10))) {
    state.SkipWithError("registration");
    return;
  }
  std::vector<hyperaccel::kubelet_dra::Claim> claims;
  for (int i = 0; i < state.range(0); ++i) {
    claims.push_back({"bench", "claim-" + std::to_string(i), "uid-" + std::to_string(i)});
  }
  std::vector<double> us;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    auto r = kubelet.Prepare(dra::kDriverName, claims);
    const double took = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (!r.status.ok() || r.claims.size() != claims.size()) {
      state.SkipWithError("prepare failed");
      return;
    }
    state.SetIterationTime(took / 1e6);
    us.push_back(took);
  }
  hyperaccel::bench::ReportLatency(state, std::move(us));
}
BENCHMARK(BM_PrepareRoundTrip)
    ->Arg(1)
    ->Arg(8)
    ->ArgNames({"claims"})
    ->Iterations(2000)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
