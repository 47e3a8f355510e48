// Footprint benchmark: starts each real daemon binary, drives it as production does, and prints its
// memory (RSS, PSS, private; the largest mappings) and the device plugin's gRPC latency as the
// kubelet sees it (client in this process, plugin in its own).
//
//   hyperaccel-footprint-bench [--bin-dir DIR] [--iterations N] [--runs R] [--settle SECONDS]
//                              [--setups emulated,sysfs] [--breakdown] [--plain-http] [--no-syscalls]
//                              [--no-go-client] [--components[=DAEMON]]
//
// The agent and the DRA driver talk HTTPS to the API-server emulator (certificates made at start,
// CA in the kubeconfig), as in a cluster; --plain-http measures them over http:// instead.
// --breakdown prints every mapping of each daemon (RSS summed per file, plus anonymous memory)
// instead of the six largest. --components splits the pages of each daemon's binary (or only of
// DAEMON, e.g. --components=hyperaccel-topology-agent) by the component they hold (gRPC, Abseil,
// Protobuf, OpenSSL, Boost, our code, ...) with bench/footprint/resident-by-component, printed
// before the tables.
// Next to the device plugin's latency it prints what the plugin process spends per call, which
// the load of a shared machine hardly changes: CPU time and context switches of all its threads
// (/proc/PID/task/*: schedstat, status), the time its threads were runnable but waiting for a
// CPU, and (unless --no-syscalls) system calls per call, counted with `strace -f -c` in a
// separate pass of 200 calls.
// A "floor" row under each set-up's gRPC rows times the same number of round trips of the same
// message sizes over a bare unix socket pair to a forked server blocked in epoll_wait (no gRPC,
// no HTTP/2; bench/floor.h), interleaved with the plugin's runs: what a round trip costs on this
// machine, to read the plugin's numbers against (bench/README.md, "Floor rows").
//
// Two node set-ups, each with 8 cards:
//   emulated  XRT software emulation (--emulate=8): XRT is loaded, as on a real node;
//   sysfs     a fake sysfs tree with 8 U55C cards (--sysfs-root): XRT is not loaded.
// Drivers: a kubelet simulator (registration, ListAndWatch, GetPreferredAllocation + Allocate,
// pod-resources), an API-server emulator (the agent publishes labels, the annotation, a Lease and
// HyperNodes) and Volcano-like bridge requests (onSessionOpen, predicate, prioritize, allocate).
// hyperaccel-dra-driver is measured too when it is in --bin-dir. When hyperaccel-go-kubelet-client
// is there too (built when Go and grpc-go are installed: bench/go-kubelet-client), the plugin's
// latency is also timed from grpc-go, the kubelet's gRPC, dialing as the kubelet does.
#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../floor.h"
#include "../proc_counters.h"
#include "deviceplugin_v1beta1.pb.h"
#include "fake_sysfs.h"
#include "hyperaccel/kubelet_sim/kubelet_sim.h"
#include "hyperaccel/placement/names.h"
#include "hyperaccel/testing/apiserver_emulator.h"
#include "synthetic.h"
#include "test_pki.h"

namespace {

namespace fs = std::filesystem;
namespace hb = hyperaccel::bench;
namespace ks = hyperaccel::kubelet_sim;
namespace syn = hyperaccel::bridge::synthetic;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kCards = 8;
constexpr const char* kToken = "footprint-token";
constexpr const char* kNode = "lpu-node-01";
constexpr double kMiB = 1024.0;

// ---- memory -----------------------------------------------------------------------------------

struct Memory {
  double rss_kib = 0, pss_kib = 0, private_kib = 0, anon_kib = 0;
  int threads = 0;
  std::vector<std::pair<double, std::string>> top;  // largest mappings by RSS (KiB, name)
  bool ok = false;
};

// Reads /proc/PID/smaps_rollup (totals) and /proc/PID/smaps (RSS per mapped file).
Memory ReadMemory(pid_t pid) {
  Memory m;
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream rollup(dir + "/smaps_rollup");
  std::string key;
  double value = 0;
  std::string unit;
  std::string line;
  while (std::getline(rollup, line)) {
    std::istringstream in(line);
    if (!(in >> key >> value)) continue;
    if (key == "Rss:") m.rss_kib = value;
    if (key == "Pss:") m.pss_kib = value;
    if (key == "Private_Clean:" || key == "Private_Dirty:") m.private_kib += value;
    if (key == "Anonymous:") m.anon_kib = value;
  }
  m.ok = m.rss_kib > 0;
  std::error_code ec;
  for (const auto& t : fs::directory_iterator(dir + "/task", ec)) {
    (void)t;
    ++m.threads;
  }
  std::map<std::string, double> by_name;
  std::ifstream smaps(dir + "/smaps");
  std::string current;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && line.find('-') < 17) {
      std::istringstream in(line);
      std::string range, perms, offset, dev, inode;
      in >> range >> perms >> offset >> dev >> inode;
      std::getline(in, current);
      current.erase(0, current.find_first_not_of(' '));
      if (current.empty()) current = "[anonymous]";
      if (current.rfind('/') != std::string::npos) current = current.substr(current.rfind('/') + 1);
    } else if (line.rfind("Rss:", 0) == 0) {
      by_name[current] += std::atof(line.c_str() + 4);
    }
  }
  for (const auto& [name, kib] : by_name) m.top.emplace_back(kib, name);
  std::sort(m.top.begin(), m.top.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return m;
}

// ---- processes ----------------------------------------------------------------------------------

struct Child {
  std::string name;
  pid_t pid = -1;
  std::string log;
};

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// Starts `path args...` with stdout and stderr in `log`.
pid_t Spawn(const std::string& path, const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<std::string> copy = args;
    std::vector<char*> argv{const_cast<char*>(path.c_str())};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(path.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

void Terminate(Child& c) {
  if (c.pid <= 0) return;
  ::kill(c.pid, SIGTERM);
  for (int i = 0; i < 50; ++i) {
    int status = 0;
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
      c.pid = -1;
      return;
    }
    std::this_thread::sleep_for(100ms);
  }
  ::kill(c.pid, SIGKILL);
  ::waitpid(c.pid, nullptr, 0);
  c.pid = -1;
}

bool Alive(const Child& c) { return c.pid > 0 && ::waitpid(c.pid, nullptr, WNOHANG) == 0; }

std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

// ---- latency -------------------------------------------------------------------------------------

struct Latency {
  double p50 = 0, p99 = 0, max = 0;
};

Latency Summarize(std::vector<double> us) {
  Latency l;
  if (us.empty()) return l;
  std::sort(us.begin(), us.end());
  l.p50 = us[us.size() / 2];
  l.p99 = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  l.max = us.back();
  return l;
}

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// ---- one node set-up ----------------------------------------------------------------------------

struct Options {
  std::string bin_dir;
  int iterations = 2000;
  int runs = 3;
  int settle_s = 5;  // the bridge releases its pooled parsers after 3 s idle
  bool emulated = true, sysfs = true;
  bool breakdown = false;     // every mapping, not the six largest
  bool components = false;    // resident pages of each binary by component
  std::string components_of;  // only this daemon ("" = every daemon)
  bool tls = true;            // the API-server emulator serves HTTPS
  bool syscalls = true;       // count the plugin's system calls per call with strace (when installed)
  bool go_client = true;      // also time the plugin from grpc-go (hyperaccel-go-kubelet-client, when built)
};

struct Row {
  std::string setup, daemon, drive;
  Memory mem;
  std::string error;
};

struct LatencyRow {
  std::string setup, rpc;
  std::vector<Latency> runs;
  std::vector<hb::PerRequest> per_request;  // the plugin's counters, one per run
  hb::Syscalls syscalls;                    // counted in a separate pass (--syscalls)
  int syscall_requests = 0;
  std::vector<double> client_cpu_us;            // the client's CPU per call, one per run (Go client only)
  std::pair<size_t, size_t> floor_bytes{0, 0};  // a floor row's request and answer sizes (bench/floor.h)
};

class Setup {
 public:
  Setup(const Options& o, std::string name, bool emulated)
      : o_(o), name_(std::move(name)), emulated_(emulated) {}
  ~Setup() {
    for (auto& c : children_) Terminate(c);
    kubelet_.reset();
    api_.Stop();
    std::error_code ec;
    if (!work_.empty()) fs::remove_all(work_, ec);
  }
  Setup(const Setup&) = delete;
  Setup& operator=(const Setup&) = delete;

  void Run(std::vector<Row>& rows, std::vector<LatencyRow>& latency);

 private:
  std::vector<std::string> HardwareFlags() const {
    if (emulated_) return {"--emulate=" + std::to_string(kCards), "--node-name=" + std::string(kNode)};
    return {"--sysfs-root=" + sysfs_->root(), "--node-name=" + std::string(kNode)};
  }
  Child* Start(const std::string& binary, std::vector<std::string> args);
  bool DrivePlugin(pid_t pid, std::vector<LatencyRow>& latency, std::string& error);
  void DriveGoClient(pid_t pid, std::vector<LatencyRow>& latency);
  bool DriveAgent(std::string& error);
  bool DriveBridge(int port, std::string& error);
  bool DriveDra(std::string& error);
  void Record(std::vector<Row>& rows, const Child* c, const std::string& daemon, const std::string& drive,
              const std::string& error);

  const Options& o_;
  std::string name_;
  bool emulated_;
  std::string work_;
  std::string kubelet_dir_;
  std::unique_ptr<hyperaccel::testing::FakeSysfs> sysfs_;
  std::unique_ptr<hyperaccel::testing::TestPki> pki_;
  hyperaccel::testing::ApiServerEmulator api_;
  std::unique_ptr<ks::KubeletSim> kubelet_;
  std::deque<Child> children_;  // Start() hands out pointers: no reallocation
};

Child* Setup::Start(const std::string& binary, std::vector<std::string> args) {
  const std::string path = o_.bin_dir + "/" + binary;
  if (::access(path.c_str(), X_OK) != 0) return nullptr;
  Child c;
  c.name = binary;
  c.log = work_ + "/" + binary + ".log";
  c.pid = Spawn(path, args, c.log);
  children_.push_back(c);
  return &children_.back();
}

void Setup::Record(std::vector<Row>& rows, const Child* c, const std::string& daemon,
                   const std::string& drive, const std::string& error) {
  Row r{name_, daemon, drive, {}, error};
  if (c != nullptr && Alive(*c)) {
    r.mem = ReadMemory(c->pid);
    if (o_.components && (o_.components_of.empty() || o_.components_of == daemon)) {
      std::printf("== %s, %s: resident pages by component\n", name_.c_str(), daemon.c_str());
      std::fflush(stdout);
      const std::string cmd = std::string(HYPERACCEL_RESIDENT_BY_COMPONENT) + " " + std::to_string(c->pid);
      if (std::system(cmd.c_str()) != 0)
        std::printf("(resident-by-component failed)\n");  // NOLINT(cert-env33-c)
      std::printf("\n");
    }
  } else if (r.error.empty()) {
    r.error = c == nullptr ? "binary not found" : "exited: " + Tail(c->log);
  }
  rows.push_back(std::move(r));
}

bool Setup::DrivePlugin(pid_t pid, std::vector<LatencyRow>& latency, std::string& error) {
  const std::string res = hyperaccel::names::kDefaultResource;
  if (!kubelet_->WaitForDevices(
          res, [](const std::vector<ks::Device>& d) { return d.size() == static_cast<size_t>(kCards); },
          30s)) {
    error = "no ListAndWatch list of 8 cards in 30 s";
    return false;
  }
  auto devices = kubelet_->Devices(res);
  std::vector<std::string> available;
  for (size_t i = 0; i < devices.size(); ++i) {
    if (i % 5 != 1) available.push_back(devices[i].id);  // every fifth card busy, as in plugin_bench
  }
  LatencyRow pref;
  pref.setup = name_;
  pref.rpc = "GetPreferredAllocation, 8 cards, k=4";
  LatencyRow alloc;
  alloc.setup = name_;
  alloc.rpc = "Allocate, 4 IDs";
  auto preferred = [&]() -> bool {
    auto r = kubelet_->GetPreferredAllocation(res, available, {}, 4);
    if (!r.ok() || r->size() != 4) {
      error = "GetPreferredAllocation failed: " + (r.ok() ? "short answer" : r.status().message());
      return false;
    }
    return true;
  };
  std::vector<std::string> ids;
  if (auto r = kubelet_->GetPreferredAllocation(res, available, {}, 4); r.ok()) ids = *r;
  auto allocate = [&]() -> bool {
    auto al = kubelet_->Allocate(res, ids);
    if (!al.ok()) {
      error = "Allocate failed: " + al.status().message();
      return false;
    }
    return true;
  };
  // Each RPC in its own batch, so that the plugin's counters (CPU, context switches) are per call.
  auto batch = [&](LatencyRow& row, const std::function<bool()>& call) -> bool {
    std::vector<double> us;
    us.reserve(static_cast<size_t>(o_.iterations));
    const hb::ProcCounters before = hb::ReadProcCounters(pid);
    for (int i = 0; i < o_.iterations; ++i) {
      auto t0 = Clock::now();
      if (!call()) return false;
      us.push_back(Us(Clock::now() - t0));
    }
    row.runs.push_back(Summarize(us));
    row.per_request.push_back(hb::Delta(before, hb::ReadProcCounters(pid), o_.iterations));
    return true;
  };
  // The machine's floor: the same number of round trips, of GetPreferredAllocation's sizes, over a
  // bare unix socket pair to a forked server blocked in epoll_wait (bench/floor.h); no gRPC, no
  // HTTP/2. The sizes are gRPC messages: 5-byte length prefix plus the serialized request this
  // bench sends and the serialized answer the plugin gave; the HTTP/2 frames around them (HEADERS,
  // DATA, trailers: some tens of bytes each way) are not counted.
  v1beta1::PreferredAllocationRequest request;
  auto* container = request.add_container_requests();
  for (const auto& id : available) container->add_available_deviceids(id);
  container->set_allocation_size(4);
  v1beta1::PreferredAllocationResponse answer;
  auto* answered = answer.add_container_responses();
  for (const auto& id : ids) answered->add_deviceids(id);
  constexpr size_t kGrpcPrefix = 5;
  const std::string floor_request(kGrpcPrefix + request.ByteSizeLong(), 'q');
  hb::FloorServer::Options fo;
  fo.request_bytes = floor_request.size();
  fo.answer.assign(kGrpcPrefix + answer.ByteSizeLong(), 'a');
  // A floor that cannot run costs its row only (a note is printed), not the plugin's rows.
  std::unique_ptr<hb::FloorServer> floor;
  std::string floor_error;
  if (auto f = hb::FloorServer::UnixPair(fo); f.ok()) {
    floor = std::move(*f);
  } else {
    floor_error = f.status().message();
  }
  LatencyRow floor_row;
  floor_row.setup = name_;
  floor_row.rpc = "floor: unix-socket ping-pong, no gRPC (this machine)";
  floor_row.floor_bytes = {floor_request.size(), fo.answer.size()};
  const pid_t floor_pid = floor ? floor->pid() : -1;
  auto floor_batch = [&](int warmup, int calls) {
    if (!floor) return;
    const hb::ProcCounters before = hb::ReadProcCounters(floor_pid);
    auto us = hb::TimeRoundTrips(*floor, floor_request, warmup, calls);
    if (!us.ok()) {
      floor_error = us.status().message();
      floor.reset();  // killed and reaped
      return;
    }
    if (calls == 0) return;
    floor_row.runs.push_back(Summarize(std::move(*us)));
    floor_row.per_request.push_back(hb::Delta(before, hb::ReadProcCounters(floor_pid), calls));
  };
  // Its first answers touch the child's copied pages: untimed, like the plugin's first calls above.
  floor_batch(10, 0);
  // Interleaved, so that the floor and the plugin see the same machine.
  for (int run = 0; run < o_.runs; ++run) {
    if (!batch(pref, preferred) || !batch(alloc, allocate)) return false;
    floor_batch(0, o_.iterations);
  }
  // System calls per call, in a short pass of its own (strace slows the plugin many times over).
  if (o_.syscalls) {
    const int n = 200;
    pref.syscalls = hb::CountSyscalls(pid, [&] {
      for (int i = 0; i < n; ++i) preferred();
    });
    alloc.syscalls = hb::CountSyscalls(pid, [&] {
      for (int i = 0; i < n; ++i) allocate();
    });
    if (floor) floor_row.syscalls = hb::CountSyscalls(floor_pid, [&] { floor_batch(n, 0); });
    pref.syscall_requests = alloc.syscall_requests = floor_row.syscall_requests = n;
  }
  floor.reset();  // killed and reaped
  latency.push_back(pref);
  latency.push_back(alloc);
  if (floor_error.empty()) {
    latency.push_back(floor_row);
  } else {
    std::printf("(%s: no floor row: %s)\n", name_.c_str(), floor_error.c_str());
  }
  // A pod that stays, so the agent has an allocation to publish.
  ks::AdmitRequest pod;
  pod.pod = "llm-0";
  pod.container = "main";
  pod.resource = res;
  pod.count = 2;
  if (auto a = kubelet_->AdmitContainer(pod); !a.ok()) {
    error = "admission failed: " + a.status().message();
    return false;
  }
  return true;
}

// Times GetPreferredAllocation and Allocate from grpc-go, as the kubelet calls them
// (bench/go-kubelet-client): one client process per run and method, so that the plugin's counters
// over a run are that method's. Rows are added only when every run succeeded.
void Setup::DriveGoClient(pid_t pid, std::vector<LatencyRow>& latency) {
  const std::string client = o_.bin_dir + "/hyperaccel-go-kubelet-client";
  if (!o_.go_client || ::access(client.c_str(), X_OK) != 0) return;
  auto info = kubelet_->Plugin(hyperaccel::names::kDefaultResource);
  if (!info) return;
  const std::string socket = kubelet_dir_ + "/" + info->endpoint;
  const std::pair<const char*, const char*> methods[] = {
      {"GetPreferredAllocation", "GetPreferredAllocation k=4, grpc-go"},
      {"Allocate", "Allocate, 4 IDs, grpc-go"}};
  for (const auto& [method, label] : methods) {
    LatencyRow row;
    row.setup = name_;
    row.rpc = label;
    for (int run = 0; run < o_.runs; ++run) {
      const std::string cmd = client + " -socket " + socket + " -iterations " +
                              std::to_string(o_.iterations) + " -runs 1 -method " + method + " 2>&1";
      const hb::ProcCounters before = hb::ReadProcCounters(pid);
      FILE* out = ::popen(cmd.c_str(), "r");  // NOLINT(cert-env33-c): our own binary, fixed arguments
      if (out == nullptr) return;
      std::string text;
      std::array<char, 512> buf{};
      while (std::fgets(buf.data(), static_cast<int>(buf.size()), out) != nullptr) text += buf.data();
      const int rc = ::pclose(out);
      const hb::ProcCounters after = hb::ReadProcCounters(pid);
      Latency l;
      double cpu = 0;
      char name[64] = {};
      int r = 0;
      const size_t at = text.find("RESULT ");
      if (rc != 0 || at == std::string::npos ||
          std::sscanf(text.c_str() + at, "RESULT %63s %d %lf %lf %lf %lf", name, &r, &l.p50, &l.p99, &l.max,
                      &cpu) != 6) {
        std::printf("(%s: the Go client failed: %s)\n", name_.c_str(), text.c_str());
        return;
      }
      row.runs.push_back(l);
      row.per_request.push_back(hb::Delta(before, after, o_.iterations));
      row.client_cpu_us.push_back(cpu);
    }
    latency.push_back(row);
  }
}

bool Setup::DriveAgent(std::string& error) {
  auto deadline = Clock::now() + 30s;
  for (;;) {
    auto n = api_.Get("nodes", kNode);
    if (n && n->at("metadata").contains("annotations") &&
        n->at("metadata").at("annotations").contains(hyperaccel::names::kAnnotationTopology)) {
      const std::string t =
          n->at("metadata").at("annotations").at(hyperaccel::names::kAnnotationTopology).get<std::string>();
      // The admitted pod's 2 cards show up as allocated once the agent polled pod-resources.
      auto j = Json::parse(t, nullptr, false);
      int allocated = 0;
      if (j.is_object() && j.contains("cards")) {
        for (const auto& c : j["cards"]) allocated += c.value("allocated", false) ? 1 : 0;
      }
      if (allocated == 2) return true;
    }
    if (Clock::now() > deadline) {
      error = "the agent did not publish the allocation in 30 s";
      return false;
    }
    std::this_thread::sleep_for(100ms);
  }
}

bool Setup::DriveBridge(int port, std::string& error) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(10);
  auto deadline = Clock::now() + 10s;
  while (true) {
    if (auto r = client.Get("/healthz"); r && r->status == 200) break;
    if (Clock::now() > deadline) {
      error = "no /healthz answer in 10 s";
      return false;
    }
    std::this_thread::sleep_for(50ms);
  }
  // A 100-node session, then the calls Volcano makes per task.
  syn::Cluster cluster = syn::MakeCluster(100, 4);
  const syn::JobSpec job = syn::LinkedGang("ml-team/llm", 2, 4, "llm-uid-", "llm-");
  std::vector<syn::JobSpec> jobs = cluster.jobs;
  jobs.push_back(job);
  auto post = [&](const std::string& verb, const std::string& body) {
    auto r = client.Post(("/" + verb).c_str(), body, "application/json");
    if (!r || r->status != 200) {
      error = verb + ": " + (r ? "HTTP " + std::to_string(r->status) : httplib::to_string(r.error()));
      return false;
    }
    return true;
  };
  if (!post("onSessionOpen", syn::SnapshotBody(cluster.nodes, jobs))) return false;
  for (const auto& task : job.tasks) {
    for (int i = 0; i < 200; ++i) {
      size_t n = static_cast<size_t>(i) % cluster.nodes.size();
      if (!post("predicate", syn::PredicateBody(task, cluster.nodes[n], cluster.node_tasks[n]))) return false;
    }
    if (!post("prioritize", syn::PrioritizeBody(task, cluster.nodes, cluster.node_tasks))) return false;
    syn::TaskSpec placed = task;
    placed.node = cluster.nodes[0].name;
    if (!post("allocate", syn::TaskEventBody(placed))) return false;
  }
  return true;
}

void Setup::Run(std::vector<Row>& rows, std::vector<LatencyRow>& latency) {
  char tmpl[] = "/tmp/hafoot-XXXXXX";  // short: unix socket paths are limited to 107 bytes
  if (::mkdtemp(tmpl) == nullptr) {
    rows.push_back({name_, "-", "-", {}, "cannot create a work directory"});
    return;
  }
  work_ = tmpl;
  if (!emulated_) {
    sysfs_ = std::make_unique<hyperaccel::testing::FakeSysfs>();
    sysfs_->Generate(kCards);
  }
  if (o_.tls) {
    pki_ = std::make_unique<hyperaccel::testing::TestPki>();
    api_.SetTls(pki_->server_cert_file, pki_->server_key_file);
  }
  if (auto s = api_.Start(0); !s.ok()) {
    rows.push_back({name_, "-", "-", {}, "API-server emulator: " + s.message()});
    return;
  }
  api_.AddToken(kToken);
  api_.PutNode(kNode, {{"kubernetes.io/hostname", kNode}});
  const std::string kubeconfig = work_ + "/kubeconfig";
  std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\nclusters:\n- name: f\n  cluster:\n    server: "
                            << api_.url()
                            << (pki_ ? "\n    certificate-authority: " + pki_->ca_file : std::string())
                            << "\nusers:\n- name: f\n  user:\n    token: " << kToken
                            << "\ncontexts:\n- name: f\n  context:\n    cluster: f\n    user: f\n"
                            << "current-context: f\n";
  ks::Options ko;
  ko.dir = work_ + "/dp";
  kubelet_dir_ = ko.dir;
  ko.pod_resources_socket = work_ + "/pr.sock";
  kubelet_ = std::make_unique<ks::KubeletSim>(ko);
  if (auto s = kubelet_->Start(); !s.ok()) {
    rows.push_back({name_, "-", "-", {}, "kubelet simulator: " + s.message()});
    return;
  }

  std::vector<std::string> plugin_args = HardwareFlags();
  plugin_args.insert(plugin_args.end(), {"--kubelet-dir=" + ko.dir,
                                         "--metrics-address=127.0.0.1:" + std::to_string(FreePort())});
  Child* plugin = Start("hyperaccel-device-plugin", plugin_args);
  std::string plugin_error;
  const bool plugin_ok = plugin != nullptr && DrivePlugin(plugin->pid, latency, plugin_error);
  if (plugin_ok) DriveGoClient(plugin->pid, latency);

  std::vector<std::string> agent_args = {"run"};
  for (auto& f : HardwareFlags()) agent_args.push_back(f);
  agent_args.insert(agent_args.end(),
                    {"--kubeconfig=" + kubeconfig, "--pod-resources-socket=" + ko.pod_resources_socket,
                     "--hypernodes=direct", "--rack=r01", "--idc=dc1", "--poll-interval=1",
                     "--admin-address=127.0.0.1:" + std::to_string(FreePort()),
                     "--lease-namespace=kube-system", "--identity=agent-footprint"});
  Child* agent = Start("hyperaccel-topology-agent", agent_args);
  std::string agent_error;
  if (agent != nullptr && plugin_ok) DriveAgent(agent_error);

  const int bridge_port = FreePort();
  Child* bridge = Start("hyperaccel-volcano-bridge", {"--listen=127.0.0.1:" + std::to_string(bridge_port)});
  std::string bridge_error;
  if (bridge != nullptr) DriveBridge(bridge_port, bridge_error);

  // The DRA driver publishes the node's slices to the same emulator and then idles; measured when
  // present (override its flags with HYPERACCEL_FOOTPRINT_DRA_ARGS, space-separated).
  Child* dra = nullptr;
  if (::access((o_.bin_dir + "/hyperaccel-dra-driver").c_str(), X_OK) == 0) {
    std::vector<std::string> dra_args;
    // Read once in this single-threaded driver, before the daemons are measured.
    const char* extra = std::getenv("HYPERACCEL_FOOTPRINT_DRA_ARGS");  // NOLINT(concurrency-mt-unsafe)
    if (extra != nullptr) {
      std::istringstream in(extra);
      for (std::string a; in >> a;) dra_args.push_back(a);
    } else {
      dra_args = HardwareFlags();
      dra_args.insert(dra_args.end(), {"--kubeconfig=" + kubeconfig,
                                       "--admin-address=127.0.0.1:" + std::to_string(FreePort())});
    }
    dra = Start("hyperaccel-dra-driver", dra_args);
  }

  std::this_thread::sleep_for(std::chrono::seconds(o_.settle_s));  // steady state
  Record(rows, plugin, "hyperaccel-device-plugin",
         "kubelet sim: register, ListAndWatch, " + std::to_string(2 * o_.iterations * o_.runs) + " RPCs",
         plugin_error);
  Record(rows, agent, "hyperaccel-topology-agent", "API emulator: labels, annotation, Lease, HyperNodes",
         agent_error);
  Record(rows, bridge, "hyperaccel-volcano-bridge", "100-node session, 400 predicates, 2 prioritize",
         bridge_error);
  if (dra != nullptr) Record(rows, dra, "hyperaccel-dra-driver", "started; idle", "");
}

std::string Fmt(const char* fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, a);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::error_code ec;
  o.bin_dir = fs::read_symlink("/proc/self/exe", ec).parent_path().string();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      const std::string prefix = std::string(name) + "=";
      if (a.rfind(prefix, 0) == 0) return argv[i] + prefix.size();
      if (a == name && i + 1 < argc) return argv[++i];
      return nullptr;
    };
    if (const char* v = value("--bin-dir")) {
      o.bin_dir = v;
    } else if (const char* v2 = value("--iterations")) {
      o.iterations = std::max(10, std::atoi(v2));
    } else if (const char* v3 = value("--runs")) {
      o.runs = std::max(1, std::atoi(v3));
    } else if (const char* v4 = value("--settle")) {
      o.settle_s = std::max(0, std::atoi(v4));
    } else if (const char* v5 = value("--setups")) {
      const std::string list = v5;
      o.emulated = list.find("emulated") != std::string::npos;
      o.sysfs = list.find("sysfs") != std::string::npos;
    } else if (a == "--components") {
      o.components = true;
    } else if (a.rfind("--components=", 0) == 0) {
      o.components = true;
      o.components_of = a.substr(std::string("--components=").size());
    } else if (a == "--breakdown") {
      o.breakdown = true;
    } else if (a == "--plain-http") {
      o.tls = false;
    } else if (a == "--no-go-client") {
      o.go_client = false;
    } else if (a == "--no-syscalls") {
      o.syscalls = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--bin-dir DIR] [--iterations N] [--runs R] [--settle SECONDS] [--setups "
                   "emulated,sysfs] [--breakdown] [--plain-http] [--no-syscalls] [--no-go-client] "
                   "[--components[=DAEMON]]\n",
                   argv[0]);
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  double load[3] = {0, 0, 0};
  if (::getloadavg(load, 3) < 0) load[0] = -1;

  std::vector<Row> rows;
  std::vector<LatencyRow> latency;
  if (o.emulated) {
    Setup emulated(o, "emulated (XRT)", true);
    emulated.Run(rows, latency);
  }
  if (o.sysfs) {
    Setup sysfs(o, "sysfs (no XRT)", false);
    sysfs.Run(rows, latency);
  }
  double load_end[3] = {0, 0, 0};
  if (::getloadavg(load_end, 3) < 0) load_end[0] = -1;

  std::printf(
      "Daemon memory, 8 cards, steady state (%d s after the drive); API server over %s; load average %.2f -> "
      "%.2f\n\n",
      o.settle_s, o.tls ? "HTTPS" : "plain HTTP", load[0], load_end[0]);
  std::printf("| %-15s | %-26s | %8s | %8s | %8s | %8s | %7s | %-4s |\n", "set-up", "daemon", "RSS MiB",
              "PSS MiB", "priv MiB", "anon MiB", "threads", "<=12");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(17, '-').c_str(), std::string(28, '-').c_str(),
              std::string(10, '-').c_str(), std::string(10, '-').c_str(), std::string(10, '-').c_str(),
              std::string(10, '-').c_str(), std::string(9, '-').c_str(), std::string(6, '-').c_str());
  bool all_ok = true;
  for (const auto& r : rows) {
    if (!r.mem.ok) {
      std::printf("| %-15s | %-26s | %s\n", r.setup.c_str(), r.daemon.c_str(),
                  ("FAILED: " + r.error).c_str());
      all_ok = false;
      continue;
    }
    const double limit = r.setup.rfind("sysfs", 0) == 0 ? 10 * kMiB : 12 * kMiB;
    const bool ok = r.mem.rss_kib <= limit;
    std::printf("| %-15s | %-26s | %8.1f | %8.1f | %8.1f | %8.1f | %7d | %-4s |\n", r.setup.c_str(),
                r.daemon.c_str(), r.mem.rss_kib / kMiB, r.mem.pss_kib / kMiB, r.mem.private_kib / kMiB,
                r.mem.anon_kib / kMiB, r.mem.threads, ok ? "ok" : "MISS");
    if (!r.error.empty()) std::printf("|   drive error: %s\n", r.error.c_str());
  }
  std::printf("\n(limit: 12 MiB with XRT emulation, 10 MiB without XRT)\n\n%s by RSS (KiB):\n",
              o.breakdown ? "Every mapping" : "Largest mappings (--breakdown: all)");
  for (const auto& r : rows) {
    if (!r.mem.ok) continue;
    if (o.breakdown) {
      std::printf("  %s %s\n", r.setup.c_str(), r.daemon.c_str());
      for (const auto& [kib, name] : r.mem.top) {
        if (kib > 0) std::printf("    %8.0f  %s\n", kib, name.c_str());
      }
      continue;
    }
    std::string line;
    for (size_t i = 0; i < r.mem.top.size() && i < 6; ++i) {
      line += "  " + r.mem.top[i].second + " " + Fmt("%.0f", r.mem.top[i].first);
    }
    std::printf("  %-15s %-26s%s\n", r.setup.c_str(), r.daemon.c_str(), line.c_str());
  }
  std::printf(
      "\nDevice-plugin gRPC over the kubelet socket (gRPC C++ client in this process; rows marked grpc-go: "
      "bench/go-kubelet-client, dialing as the kubelet does), %d calls per run, "
      "%d runs; min over runs (and max) of each percentile, microseconds\n\n",
      o.iterations, o.runs);
  int rpc_w = 40;  // the floor rows' names are longer
  for (const auto& l : latency) rpc_w = std::max(rpc_w, static_cast<int>(l.rpc.size()));
  std::printf("| %-15s | %-*s | %-13s | %-13s | %-15s | %-5s |\n", "set-up", rpc_w, "rpc", "p50 min (max)",
              "p99 min (max)", "max min (max)", "<100");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(17, '-').c_str(), std::string(rpc_w + 2, '-').c_str(),
              std::string(15, '-').c_str(), std::string(15, '-').c_str(), std::string(17, '-').c_str(),
              std::string(7, '-').c_str());
  for (const auto& l : latency) {
    auto span = [&](double Latency::*field) {
      double lo = 1e18, hi = 0;
      for (const auto& r : l.runs) {
        lo = std::min(lo, r.*field);
        hi = std::max(hi, r.*field);
      }
      return std::make_pair(lo, hi);
    };
    auto [p50lo, p50hi] = span(&Latency::p50);
    auto [p99lo, p99hi] = span(&Latency::p99);
    auto [maxlo, maxhi] = span(&Latency::max);
    char p50[32], p99[32], mx[32];
    std::snprintf(p50, sizeof p50, "%.0f (%.0f)", p50lo, p50hi);
    std::snprintf(p99, sizeof p99, "%.0f (%.0f)", p99lo, p99hi);
    std::snprintf(mx, sizeof mx, "%.0f (%.0f)", maxlo, maxhi);
    const bool floor = l.floor_bytes.first > 0;
    std::printf("| %-15s | %-*s | %-13s | %-13s | %-15s | %-5s |\n", l.setup.c_str(), rpc_w, l.rpc.c_str(),
                p50, p99, mx, floor ? "floor" : (p99lo < 100 ? "ok" : "MISS"));
  }
  for (const auto& l : latency) {
    if (l.floor_bytes.first == 0) continue;
    std::printf(
        "  %s, floor: %zu-byte requests, %zu-byte answers (GetPreferredAllocation's gRPC messages without "
        "HTTP/2 "
        "framing) over a unix socket pair to a forked server blocked in epoll_wait (bench/floor.h)\n",
        l.setup.c_str(), l.floor_bytes.first, l.floor_bytes.second);
  }
  std::printf(
      "\nWhat the plugin process (floor rows: the floor server) spends per call (its counters over each run "
      "of "
      "%d calls; min (max) over runs). wake-ups = voluntary context switches (a thread blocked, then was "
      "woken), preempted = "
      "involuntary ones; wait = runnable but not on a CPU; syscalls from a separate strace pass of %d "
      "calls\n\n",
      o.iterations, 200);
  std::printf("| %-15s | %-*s | %-15s | %-13s | %-13s | %-13s | %-8s | %s |\n", "set-up", rpc_w, "rpc",
              "CPU us", "wake-ups", "preempted", "wait us", "syscalls",
              "busiest threads (switches per call)");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(17, '-').c_str(),
              std::string(rpc_w + 2, '-').c_str(), std::string(17, '-').c_str(), std::string(15, '-').c_str(),
              std::string(15, '-').c_str(), std::string(15, '-').c_str(), std::string(10, '-').c_str(),
              std::string(37, '-').c_str());
  for (const auto& l : latency) {
    auto span = [&](double hb::PerRequest::*field, const char* fmt) {
      double lo = 1e18, hi = 0;
      for (const auto& r : l.per_request) {
        if (!r.ok) continue;
        lo = std::min(lo, r.*field);
        hi = std::max(hi, r.*field);
      }
      if (hi == 0 && lo > hi) return std::string("-");
      char b[48];
      std::snprintf(b, sizeof b, fmt, lo, hi);
      return std::string(b);
    };
    std::string syscalls = "-";
    if (l.syscalls.total >= 0 && l.syscall_requests > 0) {
      syscalls = Fmt("%.1f", static_cast<double>(l.syscalls.total) / l.syscall_requests);
    }
    const std::string busiest = l.per_request.empty() ? "-" : hb::BusiestThreads(l.per_request.back());
    std::printf("| %-15s | %-*s | %-15s | %-13s | %-13s | %-13s | %-8s | %s |\n", l.setup.c_str(), rpc_w,
                l.rpc.c_str(), span(&hb::PerRequest::cpu_us, "%.0f (%.0f)").c_str(),
                span(&hb::PerRequest::voluntary, "%.2f (%.2f)").c_str(),
                span(&hb::PerRequest::involuntary, "%.2f (%.2f)").c_str(),
                span(&hb::PerRequest::wait_us, "%.0f (%.0f)").c_str(), syscalls.c_str(), busiest.c_str());
  }
  for (const auto& l : latency) {
    if (l.client_cpu_us.empty()) continue;
    const auto [lo, hi] = std::minmax_element(l.client_cpu_us.begin(), l.client_cpu_us.end());
    std::printf("  %s, %s: the client's own CPU per call %.0f (%.0f) us\n", l.setup.c_str(), l.rpc.c_str(),
                *lo, *hi);
  }
  for (const auto& l : latency) {
    if (l.syscalls.total < 0) continue;
    std::printf("  %s, %s: syscalls per call: %s\n", l.setup.c_str(), l.rpc.c_str(),
                hb::TopSyscalls(l.syscalls, l.syscall_requests, 6).c_str());
  }
  return all_ok ? 0 : 1;
}
