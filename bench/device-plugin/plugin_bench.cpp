// Device-plugin benchmark: GetPreferredAllocation / Allocate latency through real gRPC on a unix
// socket (8 and 64 cards), start-up to the first ListAndWatch response, kubelet restart to
// re-registration, health change to kubelet update, and resident memory over 10 000 allocations.
//
//   hyperaccel-device-plugin-bench [--plugin PATH/hyperaccel-device-plugin] [--iterations N]
//
// With --plugin the start-up and memory rows are also measured on the real binary in its own
// process (`--emulate=8`, XRT software emulation).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../ring_links.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/metrics.h"
#include "hyperaccel/device_plugin/allocation.h"
#include "hyperaccel/device_plugin/plugin.h"
#include "hyperaccel/kubelet_sim/kubelet_sim.h"

extern char** environ;

namespace {

namespace dp = hyperaccel::device_plugin;
namespace hw = hyperaccel::hw;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
constexpr const char* kRes = "hyperaccel.ai/fpga";

std::string CardId(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0000:%02x:00.1", 0x10 + i);
  return buf;
}

hw::Inventory Ring(int n) {
  hw::Inventory inv;
  for (int i = 0; i < n; ++i) {
    hw::Card c;
    c.id = CardId(i);
    c.serial = "SER" + std::to_string(1000 + i);
    c.shell = "xilinx_u55c_gen3x16_xdma_base_3";
    c.numa_node = i * 2 < n ? 0 : 1;
    c.render_node = "/dev/dri/renderD" + std::to_string(128 + i);
    inv.cards.push_back(c);
  }
  hyperaccel::bench::LinkCardsInRing(inv);
  return inv;
}

struct Stats {
  double p50_us = 0, p99_us = 0, max_us = 0;
};

Stats Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  Stats s;
  if (us.empty()) return s;
  s.p50_us = us[us.size() / 2];
  s.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  s.max_us = us.back();
  return s;
}

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

std::string TempRoot() {
  char tmpl[] = "/tmp/hdpb-XXXXXX";
  return ::mkdtemp(tmpl);
}

void Row(const std::string& what, const std::string& value, const std::string& target, bool ok) {
  std::printf("| %-58s | %-26s | %-12s | %-4s |\n", what.c_str(), value.c_str(), target.c_str(),
              ok ? "ok" : "MISS");
}

std::string Fmt(const char* fmt, double a, double b = 0) {
  char buf[128];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

// One in-process plugin + simulator pair.
struct Rig {
  std::string root;
  dp::ManualDeviceSource source;
  hyperaccel::metrics::Registry registry;
  std::unique_ptr<hyperaccel::kubelet_sim::KubeletSim> sim;
  std::unique_ptr<dp::Plugin> plugin;
  Clock::duration start_to_first_list{};

  explicit Rig(int cards) : root(TempRoot()) {
    sim = std::make_unique<hyperaccel::kubelet_sim::KubeletSim>(
        hyperaccel::kubelet_sim::Options{root + "/dp", ""});
    (void)sim->Start();
    dp::PluginOptions o;
    o.kubelet_dir = root + "/dp";
    source.Publish(Ring(cards));
    auto t0 = Clock::now();
    plugin = std::make_unique<dp::Plugin>(o, &source, &registry);
    (void)plugin->Start();
    sim->WaitForDevices(
        kRes, [cards](auto& d) { return static_cast<int>(d.size()) == cards; }, 10s);
    start_to_first_list = Clock::now() - t0;
  }
  ~Rig() {
    plugin->Stop();
    plugin.reset();
    sim.reset();
    fs::remove_all(root);
  }
};

void LatencyRows(int cards, int iterations) {
  Rig rig(cards);
  const int size = cards >= 64 ? 8 : 4;
  std::vector<std::string> available;
  for (int i = 0; i < cards; ++i) {
    if (i % 5 != 1) available.push_back(CardId(i));  // every fifth card busy
  }
  std::vector<double> pref, alloc, local;
  for (int i = 0; i < iterations; ++i) {
    auto t0 = Clock::now();
    auto r = rig.sim->GetPreferredAllocation(kRes, available, {}, size);
    pref.push_back(Us(Clock::now() - t0));
    if (!r.ok() || static_cast<int>(r->size()) != size) {
      std::fprintf(stderr, "GetPreferredAllocation failed: %s\n", r.status().ToString().c_str());
      return;
    }
    t0 = Clock::now();
    auto a = rig.sim->Allocate(kRes, *r);
    alloc.push_back(Us(Clock::now() - t0));
    if (!a.ok()) {
      std::fprintf(stderr, "Allocate failed: %s\n", a.status().ToString().c_str());
      return;
    }
  }
  // The same choice without gRPC, to show what placement itself costs.
  dp::DeviceTable table(dp::MakeNamer(dp::NamingMode::kSingle, kRes, "", nullptr));
  auto view = table.Apply(Ring(cards)).at(kRes);
  for (int i = 0; i < iterations; ++i) {
    auto t0 = Clock::now();
    auto r = dp::PreferredAllocation(*view, available, {}, size);
    local.push_back(Us(Clock::now() - t0));
  }
  auto p = Summarize(pref), a = Summarize(alloc), l = Summarize(local);
  const double target = cards <= 16 ? 100 : 1000;
  Row("GetPreferredAllocation via gRPC, " + std::to_string(cards) + " cards, k=" + std::to_string(size),
      Fmt("p50 %.0f us, p99 %.0f us", p.p50_us, p.p99_us), Fmt("p99 < %.0f us", target), p.p99_us < target);
  Row("  placement alone (no gRPC), " + std::to_string(cards) + " cards",
      Fmt("p50 %.1f us, p99 %.1f us", l.p50_us, l.p99_us), "-", true);
  Row("Allocate via gRPC, " + std::to_string(cards) + " cards, " + std::to_string(size) + " IDs",
      Fmt("p50 %.0f us, p99 %.0f us", a.p50_us, a.p99_us), "-", true);
}

void InProcessRows() {
  std::vector<double> starts;
  for (int i = 0; i < 5; ++i) {
    Rig rig(8);
    starts.push_back(Us(rig.start_to_first_list) / 1000);
  }
  std::sort(starts.begin(), starts.end());
  Row("Plugin::Start -> first ListAndWatch, 8 cards (in-process)", Fmt("median %.1f ms", starts[2]),
      "< 100 ms", starts[2] < 100);

  Rig rig(8);
  // Health change -> kubelet sees it.
  auto inv = Ring(8);
  std::vector<double> health;
  for (int i = 0; i < 20; ++i) {
    inv.cards[3].health = i % 2 == 0 ? hw::Health::kUnhealthy : hw::Health::kHealthy;
    bool want = i % 2 != 0;
    auto t0 = Clock::now();
    rig.source.Publish(inv);
    rig.sim->WaitForDevices(
        kRes, [&](auto& d) { return d[3].healthy == want; }, 5s);
    health.push_back(Us(Clock::now() - t0) / 1000);
  }
  auto h = Summarize(health);
  Row("health change -> kubelet update", Fmt("p50 %.2f ms, max %.2f ms", h.p50_us, h.max_us), "< 1 s",
      h.max_us < 1000);

  // Kubelet restart -> re-registered and list received.
  std::vector<double> restarts;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    (void)rig.sim->Restart();
    rig.sim->WaitForRegistrations(kRes, i + 2, 5s);
    rig.sim->WaitForDevices(
        kRes, [](auto& d) { return d.size() == 8 && d[0].healthy; }, 5s);
    restarts.push_back(Us(Clock::now() - t0) / 1000);
  }
  auto r = Summarize(restarts);
  Row("kubelet restart -> re-registered + full list", Fmt("p50 %.0f ms, max %.0f ms", r.p50_us, r.max_us),
      "< 1 s", r.max_us < 1000);
}

uint64_t ChildRssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

void ProcessRows(const std::string& binary) {
  std::string root = TempRoot();
  hyperaccel::kubelet_sim::KubeletSim sim({root + "/dp", ""});
  (void)sim.Start();
  std::vector<std::string> args = {binary, "--emulate=8", "--kubelet-dir=" + root + "/dp",
                                   "--metrics-address=off", "--log-level=info"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string log_path = root + "/plugin.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  auto t0 = Clock::now();
  int spawned = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    std::fprintf(stderr, "cannot start %s\n", binary.c_str());
    return;
  }
  bool got = sim.WaitForDevices(
      kRes, [](auto& d) { return d.size() == 8; }, 30s);
  double ms = Us(Clock::now() - t0) / 1000;
  Row("process start -> first ListAndWatch, --emulate=8 (incl. XRT)",
      got ? Fmt("%.1f ms", ms) : "no list in 30 s", "< 100 ms", got && ms < 100);
  if (got) {
    auto devices = sim.Devices(kRes);
    std::vector<std::string> ids = {devices[0].id, devices[1].id};
    (void)sim.Allocate(kRes, ids);
    uint64_t before = ChildRssKiB(pid);
    int failures = 0;
    for (int i = 0; i < 10000; ++i) {
      if (!sim.Allocate(kRes, {devices[static_cast<size_t>(i % 8)].id}).ok()) ++failures;
    }
    uint64_t after = ChildRssKiB(pid);
    Row("plugin RSS before / after 10 000 Allocate (own process)",
        Fmt("%.1f / %.1f MiB", static_cast<double>(before) / 1024, static_cast<double>(after) / 1024),
        "< 20 MiB", after < 20 * 1024 && failures == 0 && after <= before + 512);
    // The plugin logs how long flag parsing + discovery set-up (XRT library load) took.
    std::ifstream log(log_path);
    std::string line;
    double setup_ms = -1;
    while (std::getline(log, line)) {
      auto at = line.find("startup_ms=");
      if (line.find("msg=started") != std::string::npos && at != std::string::npos) {
        setup_ms = std::atof(line.c_str() + at + 11);
      }
    }
    if (setup_ms >= 0) {
      Row("  of which process + discovery set-up (XRT load) / the rest",
          Fmt("%.0f ms / %.0f ms", setup_ms, ms - setup_ms), "rest < 100 ms", ms - setup_ms < 100);
    }
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  Row("SIGTERM -> clean exit and socket removed",
      (WIFEXITED(status) && WEXITSTATUS(status) == 0 ? std::string("exit 0")
                                                     : std::string("exit ") + std::to_string(status)) +
          (fs::exists(root + "/dp/hyperaccel-fpga.sock") ? ", socket left" : ", socket gone"),
      "-", WIFEXITED(status) && WEXITSTATUS(status) == 0 && !fs::exists(root + "/dp/hyperaccel-fpga.sock"));
  sim.Stop();
  fs::remove_all(root);
}

void InProcessMemoryRow() {
  Rig rig(8);
  for (int i = 0; i < 1000; ++i) (void)rig.sim->Allocate(kRes, {CardId(i % 8)});
  uint64_t before = hyperaccel::metrics::ResidentBytes();
  for (int i = 0; i < 10000; ++i) (void)rig.sim->Allocate(kRes, {CardId(i % 8), CardId((i + 1) % 8)});
  uint64_t after = hyperaccel::metrics::ResidentBytes();
  Row("RSS before / after 10 000 Allocate (plugin + simulator, 1 process)",
      Fmt("%.1f / %.1f MiB", static_cast<double>(before) / 1048576.0, static_cast<double>(after) / 1048576.0),
      "no growth", after <= before + 512 * 1024);
}

}  // namespace

int main(int argc, char** argv) {
  std::string binary;
  int iterations = 2000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--plugin" && i + 1 < argc)
      binary = argv[++i];
    else if (a.rfind("--plugin=", 0) == 0)
      binary = a.substr(9);
    else if (a == "--iterations" && i + 1 < argc)
      iterations = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--plugin PATH] [--iterations N]\n", argv[0]);
      return 2;
    }
  }
  hyperaccel::log::SetLevel(hyperaccel::log::Level::kError);
  std::signal(SIGPIPE, SIG_IGN);
  std::printf("| %-58s | %-26s | %-12s | %-4s |\n", "measurement", "result", "target", "");
  std::printf("|%s|%s|%s|%s|\n", std::string(60, '-').c_str(), std::string(28, '-').c_str(),
              std::string(14, '-').c_str(), std::string(6, '-').c_str());
  LatencyRows(8, iterations);
  LatencyRows(16, iterations);
  LatencyRows(64, iterations);
  InProcessRows();
  InProcessMemoryRow();
  if (!binary.empty()) ProcessRows(binary);
  return 0;
}
