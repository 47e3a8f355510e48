// hyperaccel-dra-driver benchmarks:
//   BM_BuildSlices64      BuildSlices for a 64-card ring (every arc of 2, 4, 8) -- the work of
//                         every resync -- plus the comparison with the previous result.
//   BM_PublishConverged   Publisher::Sync from an empty pool to converged (8-card ring) against
//                         the in-process API-server emulator, then one no-op resync.
//   BM_DaemonRss          the real daemon, --emulate=8, publishing to the emulator: VmRSS after
//                         it settled, and where the pages go (smaps_rollup: anonymous vs file).
//                         kubelet_plugin:1 also serves the kubelet (--kubelet-plugin), registered
//                         with the fake kubelet, which holds a health stream open.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "hyperaccel/dra_driver/publisher.h"
#include "hyperaccel/kubelet_dra/kubelet_dra.h"
#include "hyperaccel/testing/apiserver_emulator.h"

namespace {

using hyperaccel::dra::Json;
namespace hw = hyperaccel::hw;
namespace pl = hyperaccel::placement;

hw::Inventory Ring(int n, const std::string& serial_prefix) {
  hw::Inventory inv;
  inv.node_name = "node-1";
  for (int i = 0; i < n; ++i) {
    hw::Card c;
    char id[32];
    std::snprintf(id, sizeof id, "0000:%02x:00.1", 0x10 + i);
    c.id = id;
    c.serial = serial_prefix + std::to_string(i);
    c.product = "ALVEO-U55C";
    c.shell = "xilinx_u55c_gen3x16_xdma_base_3";
    c.numa_node = i % 2;
    inv.cards.push_back(c);
  }
  for (int i = 0; i < n; ++i) {
    hw::Link l;
    l.a = {"", inv.cards[static_cast<size_t>(i)].serial, 1};
    l.b = {"", inv.cards[static_cast<size_t>((i + 1) % n)].serial, 0};
    l.state = hw::LinkState::kUp;
    inv.links.push_back(l);
  }
  return inv;
}

void BM_BuildSlices64(benchmark::State& state) {
  const auto inv = Ring(64, "SN");
  hyperaccel::dra::SliceOptions o;
  o.node_name = "node-1";
  o.node_uid = "uid";
  o.alignment = state.range(0) ? pl::ArcAlignment::kAll : pl::ArcAlignment::kAligned;
  auto previous = hyperaccel::dra::BuildSlices(inv, o);
  size_t devices = 0;
  for (auto _ : state) {
    auto built = hyperaccel::dra::BuildSlices(inv, o);
    bool same = built.ok() && built->slices == previous->slices;
    benchmark::DoNotOptimize(same);
    devices = static_cast<size_t>(built->card_devices + built->arc_devices);
  }
  state.counters["devices"] = static_cast<double>(devices);
  state.counters["slices"] = static_cast<double>(previous->slices.size());
}
BENCHMARK(BM_BuildSlices64)->Arg(0)->Arg(1)->ArgNames({"all"})->Unit(benchmark::kMicrosecond);

void BM_PublishConverged(benchmark::State& state) {
  hyperaccel::testing::ApiServerEmulator api;
  if (!api.Start().ok()) {
    state.SkipWithError("emulator");
    return;
  }
  api.PutNode("node-1");
  hyperaccel::kube::ClusterConfig c;
  c.server = api.url();
  auto client = hyperaccel::kube::Client::Create(c);
  const auto inv = Ring(8, "SN");
  for (auto _ : state) {
    state.PauseTiming();
    for (const auto& s : api.Pool(hyperaccel::dra::kDriverName, "node-1")) {
      api.Remove("resourceslices", s["metadata"]["name"]);
    }
    hyperaccel::dra::PublisherOptions o;
    o.node_name = "node-1";
    hyperaccel::dra::Publisher p(client->get(), o);
    state.ResumeTiming();
    if (!p.Sync(inv).ok() || !p.Sync(inv).ok()) state.SkipWithError("sync failed");
  }
}
BENCHMARK(BM_PublishConverged)->Unit(benchmark::kMillisecond);

// VmRSS and the smaps_rollup lines of a process, in KiB.
std::map<std::string, double> MemoryOf(pid_t pid) {
  std::map<std::string, double> out;
  for (const char* file : {"status", "smaps_rollup"}) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string key;
      double kib = 0;
      ls >> key >> kib;
      if (!key.empty() && key.back() == ':') key.pop_back();
      if (key == "VmRSS" || key == "Rss" || key == "Anonymous" || key == "Shared_Clean" ||
          key == "Private_Clean" || key == "Private_Dirty" || key == "Pss_File" || key == "Pss_Anon") {
        out[key] = kib;
      }
    }
  }
  return out;
}

void BM_DaemonRss(benchmark::State& state) {
  namespace fs = std::filesystem;
  hyperaccel::testing::ApiServerEmulator api;
  if (!api.Start().ok()) {
    state.SkipWithError("emulator");
    return;
  }
  api.PutNode("node-1");
  const fs::path dir = fs::temp_directory_path() / ("bench-dra-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "kubeconfig")
      << "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: " << api.url()
      << "\ncontexts:\n- name: t\n  context:\n    cluster: t\n"
      << "current-context: t\n";
  {
    std::ofstream c(dir / "cabling.yaml");
    c << "version: 1\nlinks:\n";
    for (int i = 0; i < 8; ++i) {
      c << "  - a: {node: node-1, serial: EMU-node-1-0" << i << ", port: 1}\n"
        << "    b: {node: node-1, serial: EMU-node-1-0" << (i + 1) % 8 << ", port: 0}\n";
    }
  }
  const std::string bin = std::string(HYPERACCEL_BENCH_BIN_DIR) + "/hyperaccel-dra-driver";
  const std::string kubeconfig = "--kubeconfig=" + (dir / "kubeconfig").string();
  const std::string cabling = "--cabling=" + (dir / "cabling.yaml").string();
  const bool plugin = state.range(0) != 0;
  const std::string kubelet_dir = "--kubelet-dir=" + (dir / "kubelet").string();
  const std::string cdi_dir = "--cdi-dir=" + (dir / "cdi").string();
  for (auto _ : state) {
    pid_t pid = fork();
    if (pid == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      dup2(null, 2);
      if (plugin) {
        execl(bin.c_str(), bin.c_str(), "--emulate=8", "--node-name=node-1", "--admin-address=127.0.0.1:0",
              kubeconfig.c_str(), cabling.c_str(), "--kubelet-plugin=true", kubelet_dir.c_str(),
              cdi_dir.c_str(), static_cast<char*>(nullptr));
      } else {
        execl(bin.c_str(), bin.c_str(), "--emulate=8", "--node-name=node-1", "--admin-address=127.0.0.1:0",
              kubeconfig.c_str(), cabling.c_str(), static_cast<char*>(nullptr));
      }
      _exit(127);
    }
    std::unique_ptr<hyperaccel::kubelet_dra::FakeKubelet> kubelet;
    std::unique_ptr<hyperaccel::kubelet_dra::HealthStream> stream;
    if (plugin) {
      hyperaccel::kubelet_dra::Options ko;
      ko.registry_dir = (dir / "kubelet" / "plugins_registry").string();
      kubelet = std::make_unique<hyperaccel::kubelet_dra::FakeKubelet>(ko);
      if (!kubelet->Start().ok() ||
          !kubelet->WaitRegistered(hyperaccel::dra::kDriverName, 1, std::chrono::seconds(20))) {
        state.SkipWithError("the driver did not register");
      } else {
        stream = kubelet->WatchHealth(hyperaccel::dra::kDriverName);
        state.counters["registered"] = 1;
      }
    }
    // Settled: slices published, then a few seconds of steady state (rescans, watch, bookmarks).
    for (int i = 0; i < 200 && api.Pool(hyperaccel::dra::kDriverName, "node-1").size() < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::seconds(5));
    auto mem = MemoryOf(pid);
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    stream.reset();
    kubelet.reset();
    for (const auto& [k, v] : mem) state.counters[k + "_MiB"] = v / 1024.0;
    state.counters["published"] =
        static_cast<double>(api.Pool(hyperaccel::dra::kDriverName, "node-1").size());
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_DaemonRss)
    ->Arg(0)
    ->Arg(1)
    ->ArgNames({"kubelet_plugin"})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
