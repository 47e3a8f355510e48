// hyperaccel-soak: every daemon under a stream of injected faults, then a check that nothing
// crashed, nothing leaked and everything published agrees with the final state.
//
// One emulated node on loopback: a fake sysfs tree with U55C cards cabled as a ring, a kubelet
// simulator (in this process), the API-server emulator (in this process) and the real binaries
// hyperaccel-device-plugin, hyperaccel-topology-agent run (--hypernodes=direct) and
// hyperaccel-volcano-bridge. After a warm-up (which already runs every kind of fault once) the
// driver records each daemon's open fds, threads and RSS, then injects for --duration seconds,
// seeded by --seed (printed; rerun with the same seed and duration to replay the same schedule):
// kubelet restarts (socket directory wiped), pods admitted and removed, API-server 500s, 429/503,
// slow answers, hangs past the agent's request timeout, dropped connections and outages, cards
// vanishing from sysfs and coming back, cabling-file rewrites (other cabling, garbage, truncated,
// deleted), malformed bodies to the bridge and the admin ports, and slow clients (slowloris)
// against them. Then it stops injecting, restores the cabling file, leaves the cards in a seeded
// final state, waits for convergence and checks every published view against that state. Exit 0
// only when all holds; otherwise every divergence is printed. See docs/soak.md.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fake_sysfs.h"
#include "hyperaccel/kubelet_sim/kubelet_sim.h"
#include "hyperaccel/placement/annotation.h"
#include "hyperaccel/placement/names.h"
#include "hyperaccel/testing/apiserver_emulator.h"
#include "process.h"
#include "synthetic.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace hyperaccel::soak {
namespace {

namespace synthetic = bridge::synthetic;

constexpr const char* kNode = "soak-node-01";
constexpr const char* kToken = "soak-token";
constexpr const char* kRackLabel = "example.com/rack";
constexpr const char* kIdcLabel = "example.com/idc";
constexpr const char* kRack = "r07";
constexpr const char* kIdc = "seoul-1";

// Leak tolerances: the final count may exceed the post-warm-up count by this much.
constexpr int kFdSlack = 8;
constexpr int kThreadSlack = 4;
constexpr long kRssSlackKib = 8L * 1024;  // plus kRssSlackPercent of the warm-up RSS
constexpr long kRssSlackPercent = 25;
// At most this many slow-client sockets held at once.
constexpr size_t kMaxSlowClients = 120;

struct Config {
  std::string bin_dir = "build/bin";
  double duration_s = 60;
  uint64_t seed = 0;
  int cards = 8;
  bool keep = false;
  double converge_s = 60;
  // Off by default: fail when any /healthz probe went unanswered during injection. The plugin's
  // and the agent's shared admin server can still be starved by slow clients (docs/soak.md).
  bool check_probes = true;
};

std::string Hex8(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// A TCP connection to 127.0.0.1:port with send/receive timeouts; -1 when it cannot connect.
int Connect(int port, std::chrono::milliseconds timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Sends `request` on a fresh connection and returns the HTTP status of the answer (0 = none
// before the timeout or the connection closed without one).
int RawExchange(int port, std::string_view request, std::chrono::milliseconds timeout) {
  int fd = Connect(port, timeout);
  if (fd < 0) return 0;
  int status = 0;
  if (SendAll(fd, request)) {
    shutdown(fd, SHUT_WR);
    std::string got;
    char buf[4096];
    const auto deadline = Clock::now() + timeout;
    while (got.find("\r\n") == std::string::npos && Clock::now() < deadline) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    if (got.rfind("HTTP/1.", 0) == 0 && got.size() >= 12)
      status = static_cast<int>(std::strtol(got.substr(9, 3).c_str(), nullptr, 10));
  }
  close(fd);
  return status;
}

struct ProcStats {
  int fds = -1;
  int threads = -1;
  long rss_kib = -1;
};

ProcStats ReadStats(pid_t pid) {
  ProcStats s;
  const std::string base = "/proc/" + std::to_string(pid);
  std::error_code ec;
  int n = 0;
  for (fs::directory_iterator it(base + "/fd", ec), end; !ec && it != end; it.increment(ec)) ++n;
  if (!ec) s.fds = n;
  n = 0;
  ec.clear();
  for (fs::directory_iterator it(base + "/task", ec), end; !ec && it != end; it.increment(ec)) ++n;
  if (!ec) s.threads = n;
  std::ifstream status(base + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return s;
}

struct Child {
  std::string name;
  pid_t pid = -1;
  std::string log;
  int admin_port = 0;  // /healthz lives here
  ProcStats baseline;
};

// Latency samples of one probe (informative; printed, not asserted).
struct Samples {
  std::vector<double> ms;  // latency of every answered probe
  int failures = 0;        // no answer (or, for the predicate, not a 200) within 2 s
  int not_ok = 0;          // answered, but not 200 (a /healthz 503 while the kubelet restarts)
  void Print(const std::string& what) {
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) { return ms.empty() ? 0.0 : ms[static_cast<size_t>(q * (ms.size() - 1))]; };
    std::printf("  %-28s n=%-5zu p50=%7.1f ms  p99=%7.1f ms  max=%7.1f ms  failed=%d  not-200=%d\n",
                what.c_str(), ms.size(), at(0.5), at(0.99), ms.empty() ? 0.0 : ms.back(), failures, not_ok);
  }
};

class Soak {
 public:
  explicit Soak(Config config) : cfg_(std::move(config)), rng_(cfg_.seed) {}
  ~Soak() { Cleanup(); }
  Soak(const Soak&) = delete;
  Soak& operator=(const Soak&) = delete;

  int Run();

 private:
  // Set-up.
  bool Setup();
  testing::FakeCardSpec CardSpec(int i) const;
  std::string CablingYaml(const std::vector<std::pair<int, int>>& ring_pairs) const;
  std::string RingCabling() const;
  void WriteFileAtomically(const std::string& path, const std::string& text) const;
  bool Spawn(const std::string& name, const std::string& binary, const std::vector<std::string>& args,
             int admin_port);

  // Injection.
  void Inject(Clock::duration duration, bool every_kind_once);
  void InjectOne(int kind);
  void KubeletRestart();
  void Workload();
  void ApiFault();
  void CardChange();
  void CablingChange();
  void BadBody();
  void SlowClient();
  void ReleaseSlowClients(bool all);
  void ProbeLoop();
  void StopInjection();

  // Checks.
  std::vector<std::string> Divergences();
  std::vector<std::string> DaemonsAlive();
  bool Converge(const std::string& phase);
  bool TamperAndRepair();
  bool CheckLeaks();
  bool StopDaemons();
  void Cleanup();
  bool Fail(const std::string& what) {
    std::cerr << "SOAK FAILED: " << what << "\n";
    failed_ = true;
    return false;
  }

  std::vector<std::string> PresentIds() const;

  Config cfg_;
  std::mt19937_64 rng_;
  bool failed_ = false;
  std::string work_;
  std::unique_ptr<testing::FakeSysfs> sysfs_;
  std::vector<std::string> ids_;         // every card, in generation order
  std::map<std::string, int> index_of_;  // id -> generation index
  std::map<std::string, bool> present_;  // id -> in sysfs now
  std::string cabling_;
  std::string kubeconfig_;
  testing::ApiServerEmulator api_;
  std::unique_ptr<kubelet_sim::KubeletSim> kubelet_;
  std::string kubelet_dir_;
  std::vector<Child> children_;
  int bridge_port_ = 0;
  std::vector<std::string> pods_;  // admitted pods (names)
  int pod_seq_ = 0;

  struct SlowConn {
    int fd;
    Clock::time_point release;
  };
  std::vector<SlowConn> slow_;
  std::map<std::string, int> injected_;  // kind -> count

  std::atomic<bool> probing_{false};
  std::thread prober_;
  std::mutex samples_mu_;
  std::map<std::string, Samples> samples_;
};

testing::FakeCardSpec Soak::CardSpec(int i) const {
  // The same shape FakeSysfs::Generate builds (groups of 4 behind a PCIe switch, NUMA 0/1), kept
  // here so a removed card can be put back exactly as it was.
  const int group = i / 4;
  const int k = i % 4;
  const int root_bus = 0x10 + group * 12;
  auto bdf = [](int bus, int dev) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0000:%02x:%02x.0", bus, dev);
    return std::string(buf);
  };
  testing::FakeCardSpec spec;
  spec.bus = root_bus + 3 + k;
  spec.switch_path = {bdf(root_bus, 0), bdf(root_bus + 1, 0), bdf(root_bus + 2, k)};
  spec.numa = group % 2;
  spec.cpulist = group % 2 == 0 ? "0-15,32-47" : "16-31,48-63";
  spec.serial = "XFL1" + Hex8(static_cast<unsigned>(i));
  spec.render = 128 + i;
  for (int p = 0; p < 2; ++p) {
    spec.qsfp_diag[p] = testing::FakeSysfs::QsfpImage("Amphenol", "NDAQGF-F305",
                                                      "APF" + Hex8(static_cast<unsigned>(i * 2 + p)));
  }
  return spec;
}

std::string Soak::CablingYaml(const std::vector<std::pair<int, int>>& pairs) const {
  std::ostringstream y;
  y << "# Generated by hyperaccel-soak.\nversion: 1\nlinks:\n";
  for (const auto& [a, b] : pairs) {
    y << "  - a: {node: " << kNode << ", serial: " << CardSpec(a).serial << ", port: 1}\n"
      << "    b: {node: " << kNode << ", serial: " << CardSpec(b).serial << ", port: 0}\n";
  }
  return y.str();
}

std::string Soak::RingCabling() const {
  std::vector<std::pair<int, int>> pairs;
  pairs.reserve(static_cast<size_t>(cfg_.cards));
  for (int i = 0; i < cfg_.cards; ++i) pairs.emplace_back(i, (i + 1) % cfg_.cards);
  return CablingYaml(pairs);
}

void Soak::WriteFileAtomically(const std::string& path, const std::string& text) const {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::trunc) << text;
  fs::rename(tmp, path);
}

bool Soak::Spawn(const std::string& name, const std::string& binary, const std::vector<std::string>& args,
                 int admin_port) {
  Child c;
  c.name = name;
  c.log = work_ + "/" + name + ".log";
  c.admin_port = admin_port;
  std::string path = cfg_.bin_dir + "/" + binary;
  if (access(path.c_str(), X_OK) != 0) return Fail(path + " not found (build first)");
  const pid_t pid = testing::SpawnDaemon(path, args, c.log);
  if (pid < 0) return Fail("fork: " + std::generic_category().message(errno));
  c.pid = pid;
  children_.push_back(c);
  return true;
}

bool Soak::Setup() {
  char tmpl[] = "/tmp/hasoak-XXXXXX";  // short: unix socket paths are limited to 107 bytes
  if (mkdtemp(tmpl) == nullptr) return Fail("cannot create a work directory");
  work_ = tmpl;

  sysfs_ = std::make_unique<testing::FakeSysfs>();
  for (int i = 0; i < cfg_.cards; ++i) {
    std::string id = sysfs_->AddU55C(CardSpec(i));
    ids_.push_back(id);
    index_of_[id] = i;
    present_[id] = true;
  }
  cabling_ = work_ + "/cabling.yaml";
  WriteFileAtomically(cabling_, RingCabling());

  if (Status s = api_.Start(0); !s.ok()) return Fail("API-server emulator: " + s.message());
  api_.AddToken(kToken);
  api_.PutNode(kNode, {{"kubernetes.io/hostname", kNode}, {kRackLabel, kRack}, {kIdcLabel, kIdc}});
  kubeconfig_ = work_ + "/kubeconfig";
  std::ofstream(kubeconfig_)
      << "apiVersion: v1\nkind: Config\nclusters:\n- name: soak\n  cluster:\n    server: " << api_.url()
      << "\nusers:\n- name: soak\n  user:\n    token: " << kToken
      << "\ncontexts:\n- name: soak\n  context:\n    cluster: soak\n    user: soak\n"
      << "current-context: soak\n";

  kubelet_sim::Options ko;
  kubelet_dir_ = work_ + "/dp";
  ko.dir = kubelet_dir_;
  ko.pod_resources_socket = work_ + "/pr.sock";
  kubelet_ = std::make_unique<kubelet_sim::KubeletSim>(ko);
  if (Status s = kubelet_->Start(); !s.ok()) return Fail("kubelet simulator: " + s.message());

  std::cout << "== work directory " << work_ << ", sysfs " << sysfs_->root() << ", API server " << api_.url()
            << "\n";
  const int plugin_port = testing::FreeLoopbackPort();
  const int agent_port = testing::FreeLoopbackPort();
  bridge_port_ = testing::FreeLoopbackPort();
  if (plugin_port == 0 || agent_port == 0 || bridge_port_ == 0) return Fail("no free loopback port");
  const std::string discovery_common = "--sysfs-root=" + sysfs_->root();
  if (!Spawn("device-plugin", "hyperaccel-device-plugin",
             {discovery_common, "--node-name=" + std::string(kNode), "--cabling=" + cabling_,
              "--kubelet-dir=" + kubelet_dir_, "--metrics-address=127.0.0.1:" + std::to_string(plugin_port),
              "--rescan-ms=200", "--vanish-grace=1", "--recovery-probes=2"},
             plugin_port)) {
    return false;
  }
  if (!Spawn("topology-agent", "hyperaccel-topology-agent",
             {"run",
              discovery_common,
              "--node-name=" + std::string(kNode),
              "--cabling=" + cabling_,
              "--kubeconfig=" + kubeconfig_,
              "--pod-resources-socket=" + ko.pod_resources_socket,
              "--hypernodes=direct",
              std::string("--rack-label=") + kRackLabel,
              std::string("--idc-label=") + kIdcLabel,
              "--poll-interval=0.2",
              "--rescan-interval=0.5",
              "--resync-interval=5",
              "--request-timeout=1",
              "--vanish-grace=1",
              "--recovery-probes=2",
              "--admin-address=127.0.0.1:" + std::to_string(agent_port),
              "--lease-namespace=kube-system",
              "--identity=agent-soak",
              "--lease-duration=4",
              "--lease-renew-deadline=3",
              "--lease-retry-period=0.5"},
             agent_port)) {
    return false;
  }
  return Spawn("volcano-bridge", "hyperaccel-volcano-bridge",
               {"--listen=127.0.0.1:" + std::to_string(bridge_port_)}, bridge_port_);
}

std::vector<std::string> Soak::PresentIds() const {
  std::vector<std::string> out;
  for (const auto& id : ids_) {
    if (present_.at(id)) out.push_back(id);
  }
  return out;
}

// ---- injection ----------------------------------------------------------------------------

enum Kind {
  kKubeletRestart,
  kWorkload,
  kApiFault,
  kCardChange,
  kCablingChange,
  kBadBody,
  kSlowClient,
  kKinds
};

void Soak::InjectOne(int kind) {
  switch (kind) {
    case kKubeletRestart: KubeletRestart(); break;
    case kWorkload: Workload(); break;
    case kApiFault: ApiFault(); break;
    case kCardChange: CardChange(); break;
    case kCablingChange: CablingChange(); break;
    case kBadBody: BadBody(); break;
    case kSlowClient: SlowClient(); break;
    default: break;
  }
}

void Soak::Inject(Clock::duration duration, bool every_kind_once) {
  const auto end = Clock::now() + duration;
  if (every_kind_once) {
    for (int k = 0; k < kKinds; ++k) {
      InjectOne(k);
      std::this_thread::sleep_for(200ms);
    }
  }
  // Weights: cheap faults often, kubelet restarts and card changes less often.
  const std::vector<double> weights = {1, 2, 3, 2, 1, 4, 3};
  std::discrete_distribution<int> pick(weights.begin(), weights.end());
  std::uniform_int_distribution<int> pause_ms(20, 250);
  while (Clock::now() < end) {
    InjectOne(pick(rng_));
    ReleaseSlowClients(false);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng_)));
  }
}

void Soak::KubeletRestart() {
  ++injected_["kubelet restart"];
  if (Status s = kubelet_->Restart(); !s.ok()) std::cerr << "kubelet restart: " << s.message() << "\n";
}

void Soak::Workload() {
  // Admit a pod of 1..3 cards, or end one. Failures are expected while faults are in flight (a
  // card may just have vanished, the plugin may be re-registering); only the final state counts.
  if (!pods_.empty() && std::uniform_int_distribution<int>(0, 2)(rng_) == 0) {
    size_t i = std::uniform_int_distribution<size_t>(0, pods_.size() - 1)(rng_);
    kubelet_->RemovePod(pods_[i]);
    pods_.erase(pods_.begin() + static_cast<std::ptrdiff_t>(i));
    ++injected_["pod removed"];
    return;
  }
  kubelet_sim::AdmitRequest req;
  req.pod = "soak-pod-" + std::to_string(++pod_seq_);
  req.container = "main";
  req.resource = names::kDefaultResource;
  req.count = std::uniform_int_distribution<int>(1, 3)(rng_);
  if (kubelet_->AdmitContainer(req).ok()) {
    pods_.push_back(req.pod);
    ++injected_["pod admitted"];
  } else {
    ++injected_["pod admission refused"];
  }
}

void Soak::ApiFault() {
  testing::Fault f;
  const int which = std::uniform_int_distribution<int>(0, 6)(rng_);
  switch (which) {
    case 0:
    case 1:
      f.kind = testing::Fault::Kind::kError500;
      f.count = std::uniform_int_distribution<int>(1, 20)(rng_);
      ++injected_["api 500"];
      break;
    case 2:
      f.kind = testing::Fault::Kind::kRetryAfter;
      f.code = std::uniform_int_distribution<int>(0, 1)(rng_) ? 429 : 503;
      f.retry_after_seconds = 1;
      f.count = std::uniform_int_distribution<int>(1, 5)(rng_);
      ++injected_["api 429/503"];
      break;
    case 3:
      f.kind = testing::Fault::Kind::kSlow;
      f.delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 800)(rng_));
      f.count = std::uniform_int_distribution<int>(1, 5)(rng_);
      ++injected_["api slow"];
      break;
    case 4:
      // Longer than the agent's --request-timeout=1: a timeout on its side.
      f.kind = testing::Fault::Kind::kHang;
      f.delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(1200, 2500)(rng_));
      f.count = std::uniform_int_distribution<int>(1, 3)(rng_);
      ++injected_["api timeout"];
      break;
    case 5:
      f.kind = testing::Fault::Kind::kDrop;
      f.count = std::uniform_int_distribution<int>(1, 5)(rng_);
      ++injected_["api dropped connection"];
      break;
    default: {
      // A short outage: every connection refused without an answer.
      api_.SetDown(true);
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 1500)(rng_)));
      api_.SetDown(false);
      ++injected_["api outage"];
      return;
    }
  }
  if (std::uniform_int_distribution<int>(0, 2)(rng_) == 0) f.method = "PATCH";
  api_.InjectFault(f);
}

void Soak::CardChange() {
  std::vector<std::string> present;
  std::vector<std::string> gone;
  for (const auto& id : ids_) (present_[id] ? present : gone).push_back(id);
  // Bring one back when any is gone and either nothing else can go or a coin says so; never
  // remove the last card.
  const bool bring_back =
      !gone.empty() && (present.size() <= 1 || std::uniform_int_distribution<int>(0, 1)(rng_));
  if (bring_back) {
    const std::string id = gone[std::uniform_int_distribution<size_t>(0, gone.size() - 1)(rng_)];
    sysfs_->AddU55C(CardSpec(index_of_[id]));
    present_[id] = true;
    ++injected_["card returned"];
    return;
  }
  if (present.size() <= 1) return;
  const std::string id = present[std::uniform_int_distribution<size_t>(0, present.size() - 1)(rng_)];
  if (std::uniform_int_distribution<int>(0, 1)(rng_)) {
    // Mid-reset: the device directories go, the bus and driver symlinks dangle for a moment.
    sysfs_->RemoveDeviceDirs(id);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 300)(rng_)));
  }
  sysfs_->RemoveCard(id);
  present_[id] = false;
  ++injected_["card vanished"];
}

void Soak::CablingChange() {
  ++injected_["cabling file changed"];
  const int which = std::uniform_int_distribution<int>(0, 5)(rng_);
  switch (which) {
    case 0: {  // another valid cabling: a chain over a shuffled order
      std::vector<int> order(static_cast<size_t>(cfg_.cards));
      for (int i = 0; i < cfg_.cards; ++i) order[static_cast<size_t>(i)] = i;
      std::shuffle(order.begin(), order.end(), rng_);
      std::vector<std::pair<int, int>> pairs;
      pairs.reserve(order.size());
      for (size_t i = 0; i + 1 < order.size(); ++i) pairs.emplace_back(order[i], order[i + 1]);
      WriteFileAtomically(cabling_, CablingYaml(pairs));
      break;
    }
    case 1:  // not YAML at all
      WriteFileAtomically(cabling_, "version: 1\nlinks: [ {a: \x01\x02 ]]]\n");
      break;
    case 2: {  // truncated mid-write (written in place, not renamed)
      std::string text = RingCabling();
      std::ofstream(cabling_, std::ios::trunc)
          << text.substr(0, std::uniform_int_distribution<size_t>(0, text.size())(rng_));
      break;
    }
    case 3:  // deleted (a ConfigMap volume mid-update can look like this)
      fs::remove(cabling_);
      break;
    case 4:  // a self-link and an out-of-range port
      WriteFileAtomically(cabling_, "version: 1\nlinks:\n  - a: {node: " + std::string(kNode) +
                                        ", serial: XFL100000000, port: 0}\n    b: {node: " + kNode +
                                        ", serial: XFL100000000, port: 7}\n");
      break;
    default:  // back to the real cabling
      WriteFileAtomically(cabling_, RingCabling());
      break;
  }
}

void Soak::BadBody() {
  static const std::vector<std::string> kVerbs = {"predicate", "prioritize",  "onSessionOpen",
                                                  "allocate",  "preemptable", "deallocate"};
  const std::string verb = kVerbs[std::uniform_int_distribution<size_t>(0, kVerbs.size() - 1)(rng_)];
  auto post = [&](const std::string& body, const std::string& extra_headers = "") {
    return "POST /" + verb +
           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n" + extra_headers + "Connection: close\r\n\r\n" + body;
  };
  synthetic::NodeSpec node;
  node.name = kNode;
  synthetic::TaskSpec task;
  task.uid = "bad-task";
  task.name = "bad-task";
  const std::string valid = synthetic::PredicateBody(task, node, {});
  std::string request;
  const int which = std::uniform_int_distribution<int>(0, 11)(rng_);
  switch (which) {
    case 0: request = post("this is not json"); break;
    case 1: request = post(valid + "}}garbage"); break;
    case 2: request = post(valid.substr(0, valid.size() / 2)); break;
    case 3: request = post(std::string(20000, '[')); break;
    case 4: request = post(R"({"task":{"UID":7},"node":[]})"); break;
    case 5: {  // a task asking for a negative number of cards
      std::string body = valid;
      const std::string needle = "\"" + std::string(names::kDefaultResource) + "\":";
      if (auto at = body.find(needle); at != std::string::npos) body.insert(at + needle.size(), "-");
      request = post(body);
      break;
    }
    case 6: {  // random bytes
      std::string body(std::uniform_int_distribution<size_t>(1, 4096)(rng_), '\0');
      for (char& c : body) c = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng_));
      request = post(body);
      break;
    }
    case 7:  // a declared body far larger than what is sent, then close
      request = "POST /" + verb + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n{\"task\":";
      break;
    case 8:  // broken chunked encoding
      request =
          "POST /" + verb + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n";
      break;
    case 9:  // garbage request line and headers
      request = std::string{'\x16', '\x03', '\x01', '\x02', '\0'} + " NOT HTTP\r\n: :\r\n\r\n";
      break;
    case 10:  // a huge header
      request = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: " + std::string(200000, 'a') + "\r\n\r\n";
      break;
    default:  // unknown path and method
      request = "BREW /../../etc/passwd HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
      break;
  }
  // Mostly the bridge; sometimes the admin port of the plugin or the agent.
  int port = bridge_port_;
  if (std::uniform_int_distribution<int>(0, 3)(rng_) == 0) {
    port = children_[std::uniform_int_distribution<size_t>(0, 1)(rng_)].admin_port;
  }
  RawExchange(port, request, 1500ms);
  ++injected_["bad request"];
}

void Soak::SlowClient() {
  if (slow_.size() >= kMaxSlowClients) return;
  const int n = std::uniform_int_distribution<int>(1, 20)(rng_);
  const size_t target = std::uniform_int_distribution<size_t>(0, 2)(rng_);
  const int port = children_[target].admin_port;
  for (int i = 0; i < n && slow_.size() < kMaxSlowClients; ++i) {
    int fd = Connect(port, 500ms);
    if (fd < 0) continue;
    // Either unfinished headers, or complete headers with one byte of a declared body.
    const bool body = std::uniform_int_distribution<int>(0, 1)(rng_) != 0;
    const std::string part = body ? "POST /predicate HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n{"
                                  : "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    SendAll(fd, part);
    const auto hold = std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 5000)(rng_));
    slow_.push_back({fd, Clock::now() + hold});
    ++injected_["slow client"];
  }
}

void Soak::ReleaseSlowClients(bool all) {
  const auto now = Clock::now();
  for (auto it = slow_.begin(); it != slow_.end();) {
    if (all || it->release <= now) {
      close(it->fd);
      it = slow_.erase(it);
    } else {
      // A drip of one more byte now and then keeps a slowloris alive.
      if (std::uniform_int_distribution<int>(0, 9)(rng_) == 0) SendAll(it->fd, "a");
      ++it;
    }
  }
}

// While injecting: a valid predicate to the bridge and /healthz of every daemon, every 100 ms.
// Latencies are printed at the end; a probe left without an answer for 2 s fails the run (unless
// --check-probes=false). A /healthz 503 is an answer: the plugin reports itself unhealthy while
// the kubelet it serves is restarting, by design.
void Soak::ProbeLoop() {
  synthetic::NodeSpec node;
  node.name = kNode;
  synthetic::TaskSpec task;
  task.uid = "probe-task";
  task.name = "probe-task";
  task.cards = 2;
  const std::string body = synthetic::PredicateBody(task, node, {});
  while (probing_) {
    // call() returns the HTTP status, or 0 when no answer came within its timeout.
    auto timed = [&](const std::string& what, bool need_200, const std::function<int()>& call) {
      const auto t0 = Clock::now();
      const int status = call();
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      std::lock_guard lock(samples_mu_);
      Samples& s = samples_[what];
      if (status == 0 || (need_200 && status != 200)) {
        ++s.failures;
        return;
      }
      s.ms.push_back(ms);
      if (status != 200) ++s.not_ok;
    };
    timed("bridge predicate", true, [&] {
      httplib::Client c("127.0.0.1", bridge_port_);
      c.set_connection_timeout(2);
      c.set_read_timeout(2);
      auto r = c.Post("/predicate", body, "application/json");
      return r ? r->status : 0;
    });
    for (const auto& child : children_) {
      timed(child.name + " /healthz", false, [&] {
        httplib::Client c("127.0.0.1", child.admin_port);
        c.set_connection_timeout(2);
        c.set_read_timeout(2);
        auto r = c.Get("/healthz");
        return r ? r->status : 0;
      });
    }
    std::this_thread::sleep_for(100ms);
  }
}

void Soak::StopInjection() {
  api_.ClearFaults();
  api_.SetDown(false);
  ReleaseSlowClients(true);
  WriteFileAtomically(cabling_, RingCabling());
}

// ---- checks -----------------------------------------------------------------------------------

std::vector<std::string> Soak::DaemonsAlive() {
  std::vector<std::string> out;
  for (auto& c : children_) {
    if (c.pid <= 0) continue;
    int status = 0;
    if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
      out.push_back(c.name + " exited (" +
                    (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                         : "code " + std::to_string(WEXITSTATUS(status))) +
                    "); log " + c.log);
      c.pid = -1;
    }
  }
  return out;
}

// Connected components of the free cards over up links, largest size.
int LargestFreeLinkedSet(const placement::NodeTopology& t) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < t.cards.size(); ++i) {
    if (t.cards[i].healthy && !t.cards[i].allocated) index[t.cards[i].serial] = i;
  }
  std::map<size_t, std::set<size_t>> adj;
  for (const auto& l : t.links) {
    if (l.state != hw::LinkState::kUp || !l.a.node.empty() || !l.b.node.empty()) continue;
    auto a = index.find(l.a.serial);
    auto b = index.find(l.b.serial);
    if (a == index.end() || b == index.end() || a->second == b->second) continue;
    adj[a->second].insert(b->second);
    adj[b->second].insert(a->second);
  }
  std::set<size_t> seen;
  int best = 0;
  for (const auto& [serial, start] : index) {
    if (seen.count(start)) continue;
    int size = 0;
    std::vector<size_t> stack{start};
    seen.insert(start);
    while (!stack.empty()) {
      size_t v = stack.back();
      stack.pop_back();
      ++size;
      for (size_t w : adj[v]) {
        if (seen.insert(w).second) stack.push_back(w);
      }
    }
    best = std::max(best, size);
  }
  return best;
}

// "serial:port-serial:port", the two ends in sorted order.
std::string LinkKey(const std::string& serial_a, int port_a, const std::string& serial_b, int port_b) {
  std::string a = serial_a;
  a += ':';
  a += std::to_string(port_a);
  std::string b = serial_b;
  b += ':';
  b += std::to_string(port_b);
  if (b < a) std::swap(a, b);
  a += '-';
  a += b;
  return a;
}

template <typename C>
std::string JoinSet(const C& c) {
  std::string out = "{";
  for (const auto& x : c) out += (out.size() > 1 ? "," : "") + x;
  return out + "}";
}

std::vector<std::string> Soak::Divergences() {
  std::vector<std::string> d = DaemonsAlive();
  const std::vector<std::string> present = PresentIds();
  const std::set<std::string> present_set(present.begin(), present.end());
  std::map<std::string, std::string> serial_of;  // present id -> serial
  for (const auto& id : present) serial_of[id] = CardSpec(index_of_[id]).serial;

  // Admin endpoints answer.
  for (const auto& c : children_) {
    httplib::Client h("127.0.0.1", c.admin_port);
    h.set_connection_timeout(2);
    h.set_read_timeout(2);
    auto r = h.Get("/healthz");
    if (!r || r->status != 200) d.push_back(c.name + ": /healthz did not answer 200");
  }

  // Node labels and annotation.
  auto node = api_.Get("nodes", kNode);
  if (!node) return d.push_back("node " + std::string(kNode) + " is gone from the API server"), d;
  const Json labels = node->at("metadata").value("labels", Json::object());
  auto label = [&](const char* key) {
    return labels.contains(key) ? labels[key].get<std::string>() : "<none>";
  };
  const std::string count = std::to_string(present.size());
  if (label(names::kLabelPresent) != "true") d.push_back("label fpga.present=" + label(names::kLabelPresent));
  if (label(names::kLabelCount) != count) {
    d.push_back("label fpga.count=" + label(names::kLabelCount) + ", sysfs has " + count + " cards");
  }
  if (label(names::kLabelHealthy) != count) {
    d.push_back("label fpga.healthy=" + label(names::kLabelHealthy) + ", sysfs has " + count +
                " healthy cards");
  }
  if (label(names::kLabelIdc) != kIdc) d.push_back("label idc=" + label(names::kLabelIdc) + ", want " + kIdc);
  const std::string want_rack = std::string(kIdc) + "." + kRack;
  if (label(names::kLabelRack) != want_rack) {
    d.push_back("label rack=" + label(names::kLabelRack) + ", want " + want_rack);
  }

  const Json annotations = node->at("metadata").value("annotations", Json::object());
  std::optional<placement::NodeTopology> topo;
  if (!annotations.contains(names::kAnnotationTopology)) {
    d.push_back("no topology annotation");
  } else {
    auto t = placement::DecodeTopology(annotations[names::kAnnotationTopology].get<std::string>());
    if (!t.ok()) {
      d.push_back("topology annotation does not decode: " + t.status().message());
    } else {
      topo = std::move(t).value();
    }
  }
  const std::vector<std::string> allocated_ids = kubelet_->AllocatedIds(names::kDefaultResource);
  const std::set<std::string> allocated(allocated_ids.begin(), allocated_ids.end());
  if (topo) {
    std::set<std::string> annotated;
    for (const auto& c : topo->cards) {
      annotated.insert(c.id);
      if (!present_set.count(c.id)) continue;
      if (c.serial != serial_of[c.id]) d.push_back("annotation: card " + c.id + " serial " + c.serial);
      if (!c.healthy) d.push_back("annotation: card " + c.id + " unhealthy, sysfs says healthy");
      if (c.allocated != (allocated.count(c.id) > 0)) {
        d.push_back("annotation: card " + c.id + (c.allocated ? " allocated" : " free") +
                    ", the kubelet says " + (allocated.count(c.id) ? "allocated" : "free"));
      }
    }
    if (annotated != present_set) {
      d.push_back("annotation cards " + JoinSet(annotated) + " != sysfs cards " + JoinSet(present_set));
    }
    if (topo->domain != label(names::kLabelLinkDomain)) {
      d.push_back("annotation domain " + topo->domain + " != label link.domain " +
                  label(names::kLabelLinkDomain));
    }
    // Links: exactly the ring's links between present cards (the cabling file as restored); a
    // link to a card that is not here may be listed too (as down), nothing else.
    std::set<std::string> want_links;
    std::set<std::string> ring_links;
    for (int i = 0; i < cfg_.cards; ++i) {
      const int j = (i + 1) % cfg_.cards;
      const std::string key = LinkKey(CardSpec(i).serial, 1, CardSpec(j).serial, 0);
      ring_links.insert(key);
      if (present_[ids_[static_cast<size_t>(i)]] && present_[ids_[static_cast<size_t>(j)]])
        want_links.insert(key);
    }
    std::set<std::string> got_links;
    for (const auto& l : topo->links) {
      const std::string key = LinkKey(l.a.serial, l.a.port, l.b.serial, l.b.port);
      if (!ring_links.count(key)) {
        d.push_back("annotation link " + key + " is not in the cabling file");
        continue;
      }
      got_links.insert(key);
    }
    for (const auto& l : want_links) {
      if (!got_links.count(l)) d.push_back("annotation lacks cabled link " + l);
    }
  }

  // HyperNodes: a tier-1 leaf holding the node, inside the rack (tier 2), inside the IDC (tier
  // 3); one parent each.
  std::map<std::string, Json> hn;
  std::map<std::string, std::vector<std::string>> parents;
  for (const auto& h : api_.List("hypernodes")) hn[h["metadata"]["name"].get<std::string>()] = h;
  std::string leaf;
  for (const auto& [name, h] : hn) {
    for (const auto& m : h["spec"]["members"]) {
      const std::string member = m["selector"].value("exactMatch", Json::object()).value("name", "");
      if (m["type"] == "Node" && member == kNode) leaf = name;
      if (m["type"] == "HyperNode") parents[member].push_back(name);
    }
  }
  for (const auto& [child, ps] : parents) {
    if (ps.size() > 1) d.push_back("HyperNode " + child + " has " + std::to_string(ps.size()) + " parents");
  }
  std::vector<int> tiers;
  for (std::string at = leaf; !at.empty() && tiers.size() < 8;) {
    tiers.push_back(hn[at]["spec"].value("tier", -1));
    at = parents[at].empty() ? "" : parents[at].front();
  }
  if (tiers != std::vector<int>{1, 2, 3}) {
    std::string got;
    for (int t : tiers) got += std::to_string(t) + " ";
    d.push_back("HyperNode chain above " + std::string(kNode) + " has tiers [ " + got + "], want [1 2 3]");
  }

  // The kubelet's view: every present card listed healthy, anything else unhealthy.
  const auto plugin = kubelet_->Plugin(names::kDefaultResource);
  if (!plugin || !plugin->stream_open) d.push_back("kubelet: no open ListAndWatch stream");
  std::set<std::string> healthy;
  std::set<std::string> listed;
  for (const auto& dev : kubelet_->Devices(names::kDefaultResource)) {
    listed.insert(dev.id);
    if (dev.healthy) healthy.insert(dev.id);
  }
  if (healthy != present_set) {
    d.push_back("kubelet: healthy devices " + JoinSet(healthy) + " != sysfs cards " + JoinSet(present_set));
  }

  // Allocate of every healthy card: their render nodes, their IDs.
  if (!healthy.empty() && plugin && plugin->stream_open) {
    auto a = kubelet_->Allocate(names::kDefaultResource, {healthy.begin(), healthy.end()});
    if (!a.ok()) {
      d.push_back("Allocate of all healthy cards failed: " + a.status().message());
    } else if (a->container_responses_size() != 1) {
      d.push_back("Allocate answered " + std::to_string(a->container_responses_size()) + " containers");
    } else {
      const auto& cr = a->container_responses(0);
      std::set<std::string> want_nodes;
      for (const auto& id : healthy) {
        if (index_of_.count(id)) want_nodes.insert("/dev/dri/renderD" + std::to_string(128 + index_of_[id]));
      }
      std::set<std::string> got_nodes;
      for (const auto& dev : cr.devices()) got_nodes.insert(dev.host_path());
      if (got_nodes != want_nodes) {
        d.push_back("Allocate device nodes " + JoinSet(got_nodes) + " != " + JoinSet(want_nodes));
      }
      auto env = cr.envs().find("HYPERACCEL_VISIBLE_DEVICES");
      std::set<std::string> visible;
      if (env != cr.envs().end()) {
        std::stringstream ss(env->second);
        for (std::string id; std::getline(ss, id, ',');) visible.insert(id);
      }
      if (visible != healthy) {
        d.push_back("Allocate HYPERACCEL_VISIBLE_DEVICES " + JoinSet(visible) + " != " + JoinSet(healthy));
      }
    }
  }

  // The bridge: predicates consistent with the annotation.
  if (topo) {
    int free = 0;
    for (const auto& c : topo->cards) free += c.healthy && !c.allocated ? 1 : 0;
    const int linked = LargestFreeLinkedSet(*topo);
    synthetic::NodeSpec spec;
    spec.name = kNode;
    spec.cards = static_cast<int>(topo->cards.size());
    spec.topology = annotations[names::kAnnotationTopology].get<std::string>();
    spec.labels = labels.get<std::map<std::string, std::string>>();
    spec.idle = free;
    httplib::Client b("127.0.0.1", bridge_port_);
    b.set_connection_timeout(2);
    b.set_read_timeout(5);
    auto predicate = [&](int k, bool require_linked) -> int {
      synthetic::TaskSpec task;
      task.uid = "check-" + std::to_string(k) + (require_linked ? "-linked" : "");
      task.name = task.uid;
      task.cards = k;
      task.require_linked = require_linked;
      auto r = b.Post("/predicate", synthetic::PredicateBody(task, spec, {}), "application/json");
      if (!r || r->status != 200) return -1;
      auto j = Json::parse(r->body, nullptr, false);
      return j.is_object() && j.contains("code") && j["code"].is_number_integer() ? j["code"].get<int>() : -1;
    };
    struct Case {
      int k;
      bool linked;
      bool fits;
    };
    std::vector<Case> cases;
    if (free > 0) cases.push_back({free, false, true});
    cases.push_back({free + 1, false, false});
    if (linked > 0) cases.push_back({linked, true, true});
    cases.push_back({linked + 1, true, false});
    for (const auto& c : cases) {
      const int code = predicate(c.k, c.linked);
      if (code < 0 || (code == 0) != c.fits) {
        d.push_back("bridge predicate k=" + std::to_string(c.k) + (c.linked ? " require-linked" : "") +
                    ": code " + std::to_string(code) + ", annotation has " + std::to_string(free) +
                    " free cards, largest free linked set " + std::to_string(linked) + " (want " +
                    (c.fits ? "pass" : "fail") + ")");
      }
    }
  }
  return d;
}

bool Soak::Converge(const std::string& phase) {
  const auto start = Clock::now();
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg_.converge_s));
  std::vector<std::string> d;
  for (;;) {
    d = Divergences();
    if (d.empty()) break;
    if (!DaemonsAlive().empty() || Clock::now() > deadline) break;
    std::this_thread::sleep_for(250ms);
  }
  // A crash is final: report it whatever else diverged.
  for (const auto& c : children_) {
    if (c.pid <= 0) d.push_back(c.name + " is not running");
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (d.empty()) {
    std::printf("== %s: consistent after %.1f s\n", phase.c_str(), secs);
    return true;
  }
  std::cerr << "== " << phase << ": still diverging after " << secs << " s:\n";
  for (const auto& x : d) std::cerr << "   - " << x << "\n";
  return Fail(phase + ": the published state does not match the final state");
}

// Hand-edits what the agent owns, as a careless admin or a hostile controller would: a wrong
// fpga.count label, the topology annotation deleted and the tier-1 HyperNode deleted. The checks
// must notice each (so they are not vacuous), and the agent must repair them (Node resync, the
// HyperNode writer's convergence).
bool Soak::TamperAndRepair() {
  auto node = api_.Get("nodes", kNode);
  if (!node) return Fail("node " + std::string(kNode) + " is gone from the API server");
  Json edited = *node;
  edited["metadata"]["labels"][names::kLabelCount] = "99";
  edited["metadata"]["annotations"].erase(names::kAnnotationTopology);
  api_.Upsert("nodes", edited);
  std::string leaf;
  for (const auto& h : api_.List("hypernodes")) {
    if (h["spec"].value("tier", -1) == 1) leaf = h["metadata"]["name"].get<std::string>();
  }
  if (!leaf.empty()) api_.Remove("hypernodes", leaf);
  const std::vector<std::string> d = Divergences();
  auto noticed = [&](const std::string& needle) {
    return std::any_of(d.begin(), d.end(),
                       [&](const std::string& x) { return x.find(needle) != std::string::npos; });
  };
  if (!noticed("fpga.count=99") || !noticed("no topology annotation") || !noticed("HyperNode chain")) {
    std::string got;
    for (const auto& x : d) got += "\n   - " + x;
    return Fail("the checks did not notice a hand-edited Node and a deleted HyperNode; they reported:" + got);
  }
  std::printf(
      "== hand-edited the Node (fpga.count=99, annotation deleted) and deleted HyperNode %s: noticed\n",
      leaf.c_str());
  return Converge("repair after the hand edits");
}

bool Soak::CheckLeaks() {
  bool ok = true;
  std::printf("== resources (after warm-up -> now)\n");
  for (const auto& c : children_) {
    if (c.pid <= 0) continue;
    const ProcStats now = ReadStats(c.pid);
    const ProcStats& was = c.baseline;
    std::printf("  %-16s fds %3d -> %3d   threads %3d -> %3d   RSS %6ld -> %6ld KiB\n", c.name.c_str(),
                was.fds, now.fds, was.threads, now.threads, was.rss_kib, now.rss_kib);
    if (now.fds > was.fds + kFdSlack) {
      ok = Fail(c.name + ": open fds grew from " + std::to_string(was.fds) + " to " +
                std::to_string(now.fds) + " (ls -l /proc/" + std::to_string(c.pid) + "/fd)");
    }
    if (now.threads > was.threads + kThreadSlack) {
      ok = Fail(c.name + ": threads grew from " + std::to_string(was.threads) + " to " +
                std::to_string(now.threads));
    }
    const long rss_limit = was.rss_kib + kRssSlackKib + was.rss_kib * kRssSlackPercent / 100;
    if (now.rss_kib > rss_limit) {
      ok = Fail(c.name + ": RSS grew from " + std::to_string(was.rss_kib) + " KiB to " +
                std::to_string(now.rss_kib) + " KiB (limit " + std::to_string(rss_limit) + " KiB)");
    }
  }
  return ok;
}

bool Soak::StopDaemons() {
  bool ok = true;
  // Bridge first, plugin last (as a node drains).
  for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
    Child& c = *it;
    if (c.pid <= 0) continue;
    kill(c.pid, SIGTERM);
    int status = 0;
    pid_t got = 0;
    const auto deadline = Clock::now() + 15s;
    while ((got = waitpid(c.pid, &status, WNOHANG)) == 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    if (got != c.pid) {
      kill(c.pid, SIGKILL);
      waitpid(c.pid, &status, 0);
      ok = Fail(c.name + " did not exit within 15 s of SIGTERM (log " + c.log + ")");
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ok = Fail(c.name + " exited with " +
                (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                     : "code " + std::to_string(WEXITSTATUS(status))) +
                " after SIGTERM (log " + c.log + ")");
    } else {
      std::printf("  %-16s exit 0 after SIGTERM\n", c.name.c_str());
    }
    c.pid = -1;
  }
  return ok;
}

void Soak::Cleanup() {
  probing_ = false;
  if (prober_.joinable()) prober_.join();
  ReleaseSlowClients(true);
  for (auto& c : children_) {
    if (c.pid > 0) {
      kill(c.pid, SIGKILL);
      int status = 0;
      waitpid(c.pid, &status, 0);
      c.pid = -1;
    }
  }
  kubelet_.reset();
  api_.Stop();
  if (!work_.empty()) {
    if (failed_ || cfg_.keep) {
      std::cerr << "logs and files kept in " << work_ << "\n";
    } else {
      std::error_code ec;
      fs::remove_all(work_, ec);
    }
    work_.clear();
  }
  sysfs_.reset();
}

int Soak::Run() {
  const auto start = Clock::now();
  std::printf("== hyperaccel-soak seed=%llu duration=%.0fs cards=%d (replay: --seed=%llu --duration=%.0f)\n",
              static_cast<unsigned long long>(cfg_.seed), cfg_.duration_s, cfg_.cards,
              static_cast<unsigned long long>(cfg_.seed), cfg_.duration_s);
  std::fflush(stdout);
  if (!Setup() || !Converge("start-up")) return 1;

  // Warm-up: every kind of fault once and a few seconds more, so lazily created threads, pools
  // and connections exist before the baseline is taken.
  Inject(5s, true);
  StopInjection();
  for (const auto& id : ids_) {
    if (!present_[id]) {
      sysfs_->AddU55C(CardSpec(index_of_[id]));
      present_[id] = true;
    }
  }
  if (!Converge("warm-up")) return 1;
  std::this_thread::sleep_for(4s);  // let idle pools shrink (the bridge frees buffers idle for 3 s)
  for (auto& c : children_) c.baseline = ReadStats(c.pid);

  std::printf("== injecting for %.0f s\n", cfg_.duration_s);
  std::fflush(stdout);
  probing_ = true;
  prober_ = std::thread([this] { ProbeLoop(); });
  Inject(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg_.duration_s)), false);
  probing_ = false;
  prober_.join();
  StopInjection();
  // The final hardware state: every card back, or (seeded) one left out.
  for (const auto& id : ids_) {
    if (!present_[id]) {
      sysfs_->AddU55C(CardSpec(index_of_[id]));
      present_[id] = true;
    }
  }
  if (std::uniform_int_distribution<int>(0, 1)(rng_) != 0) {
    const std::string id = ids_[std::uniform_int_distribution<size_t>(0, ids_.size() - 1)(rng_)];
    sysfs_->RemoveCard(id);
    present_[id] = false;
    std::printf("== final state: card %s removed, %zu cards present\n", id.c_str(), PresentIds().size());
  } else {
    std::printf("== final state: all %zu cards present\n", ids_.size());
  }
  std::printf("== injected:\n");
  for (const auto& [kind, n] : injected_) std::printf("  %-24s %d\n", kind.c_str(), n);
  std::printf("== latency while injecting%s\n", cfg_.check_probes ? "" : " (informative)");
  bool probes_ok = true;
  for (auto& [what, s] : samples_) {
    s.Print(what);
    if (cfg_.check_probes && s.failures > 0) {
      probes_ok =
          Fail(what + ": " + std::to_string(s.failures) + " of " + std::to_string(s.failures + s.ms.size()) +
               " probes got no answer within 2 s while faults were injected");
    }
  }
  std::fflush(stdout);

  bool ok = Converge("after injection") && TamperAndRepair();
  if (ok) {
    std::this_thread::sleep_for(4s);
    ok = CheckLeaks();
  }
  std::printf("== stopping the daemons\n");
  ok = StopDaemons() && ok && probes_ok;
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("\nsoak %s in %.1f s (seed %llu)\n", ok && !failed_ ? "passed" : "FAILED", secs,
              static_cast<unsigned long long>(cfg_.seed));
  return ok && !failed_ ? 0 : 1;
}

}  // namespace
}  // namespace hyperaccel::soak

int main(int argc, char** argv) {
  CLI::App app{"hyperaccel-soak: all daemons under injected faults, then consistency and leak checks"};
  hyperaccel::soak::Config cfg;
  cfg.seed = std::random_device{}();
  app.add_option("--bin-dir", cfg.bin_dir, "directory of the built binaries")->capture_default_str();
  app.add_option("--duration", cfg.duration_s, "seconds of fault injection")
      ->envname("HYPERACCEL_SOAK_DURATION")
      ->check(CLI::Range(1.0, 86400.0))
      ->capture_default_str();
  app.add_option("--seed", cfg.seed, "seed of the fault schedule (default: random, printed)")
      ->envname("HYPERACCEL_SOAK_SEED");
  app.add_option("--cards", cfg.cards, "emulated cards")->check(CLI::Range(2, 16))->capture_default_str();
  app.add_option("--converge-timeout", cfg.converge_s, "seconds to wait for the published state to converge")
      ->check(CLI::Range(1.0, 3600.0))
      ->capture_default_str();
  app.add_flag("--check-probes", cfg.check_probes,
               "fail when a /healthz or predicate probe went unanswered (2 s) during injection "
               "(on by default; --check-probes=false to only print)")
      ->envname("HYPERACCEL_SOAK_CHECK_PROBES");
  app.add_flag("--keep", cfg.keep, "keep the work directory (logs, sockets, cabling file)");
  CLI11_PARSE(app, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  hyperaccel::soak::Soak soak(cfg);
  return soak.Run();
}
