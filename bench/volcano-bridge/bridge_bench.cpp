// Bridge benchmarks; prints one table. Targets (ARCHITECTURE.md §6): predicate p99 < 200 µs
// (keep-alive and new connection), prioritize 1000 nodes p99 < 20 ms, onSessionOpen parse
// >= 1 GB/s; predicate p99 < 5 ms while 200 slow (slowloris) connections are held (measured with
// Volcano's predicate request, tests/volcano-bridge/corpus/predicate/predicate.request.json, or
// --predicate-fixture). Usage:
//   hyperaccel-bridge-bench [--url HOST:PORT [--server-pid PID]] [--write-bodies DIR] [--predicate-fixture
//   FILE]
//   [--quick]
//   hyperaccel-bridge-bench --url HOST:PORT --slowloris-only [--server-pid PID] [--predicate-fixture FILE]
//   [--quick] hyperaccel-bridge-bench --url HOST:PORT --memory PID BODY_FILE [--max-body-bytes N]
// Without --url the HTTP rows use a server started in this process. With --url and --server-pid the
// HTTP predicate rows are followed by what the server process spent per request (CPU time, context
// switches of all its threads, time runnable but waiting for a CPU, and system calls counted by
// strace in a separate pass; see bench/proc_counters.h). Each 1-client predicate row is followed by
// a "floor" row: the same request and answer bytes exchanged with a bare forked epoll server
// (bench/floor.h), what the round trip costs on this machine without the bridge (bench/README.md,
// "Floor rows"). --http-only runs only the HTTP predicate
// rows (no in-process rows, no slow connections). --memory posts BODY_FILE,
// padded with spaces to the largest allowed body, on 16 connections at once to the server process
// PID and reports its peak resident memory and the answers.
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../floor.h"
#include "../proc_counters.h"
#include "hyperaccel/bridge/server.h"
#include "hyperaccel/bridge/service.h"
#include "hyperaccel/bridge/wire.h"
#include "hyperaccel/common/log.h"
#include "loopback.h"
#include "synthetic.h"

namespace {

namespace hb = hyperaccel::bench;
using namespace hyperaccel;
using namespace hyperaccel::bridge;
using Clock = std::chrono::steady_clock;

struct Row {
  std::string what;
  std::string value;
  std::string target;
};
std::vector<Row> g_rows;

std::string Micros(double s) {
  char b[64];
  std::snprintf(b, sizeof b, "%.1f µs", s * 1e6);
  return b;
}
std::string Millis(double s) {
  char b[64];
  std::snprintf(b, sizeof b, "%.2f ms", s * 1e3);
  return b;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

template <typename F>
std::vector<double> Time(int n, F&& f) {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    f();
    out.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return out;
}

// The realistic predicate body: a pending 4-card task and an 8-card node holding 30 pods.
std::string PredicateBody() {
  synthetic::TaskSpec task;
  task.uid = "pending-task";
  task.job = "ml-team/llm";
  task.name = "llm-worker-0";
  task.cards = 4;
  task.require_linked = true;
  synthetic::NodeSpec node;
  node.name = "fpga-node-7";
  node.domain = "ld-1";
  node.rack = "idc1.rack1";
  node.idc = "idc1";
  node.busy = 0b11;
  std::vector<synthetic::TaskSpec> pods;
  for (int i = 0; i < 30; ++i) {
    synthetic::TaskSpec p;
    p.uid = "pod-" + std::to_string(i);
    p.job = i < 2 ? "ml-team/other" : "";
    p.name = "pod-" + std::to_string(i);
    p.node = node.name;
    p.status = 32;
    p.cards = i < 2 ? 1 : 0;
    pods.push_back(p);
  }
  return synthetic::PredicateBody(task, node, pods);
}

std::string PrioritizeBody(int nodes) {
  synthetic::Cluster c = synthetic::MakeCluster(nodes, 2, 11);
  synthetic::TaskSpec task;
  task.uid = "pending-task";
  task.job = "ml-team/llm";
  task.name = "llm-worker-0";
  task.cards = 4;
  return synthetic::PrioritizeBody(task, c.nodes, c.node_tasks);
}

// A single one-card pod prioritized over 1000 nodes in an open session that already holds
// `allocations` tentative allocations (allocate events of one-card tasks spread over the nodes):
// each candidate gets its link domain's load from the session (SessionState::AddDomainLoad).
void SessionPrioritize(bool quick) {
  synthetic::Cluster c = synthetic::MakeCluster(1000, 2, 11);
  const std::string snapshot = synthetic::SnapshotBody(c.nodes, c.jobs);
  synthetic::TaskSpec task;
  task.uid = "pending-single";
  task.job = "ml-team/single";
  task.name = "single-0";
  task.cards = 1;
  const std::string body = synthetic::PrioritizeBody(task, c.nodes, c.node_tasks);
  JsonBuffer pb(body);
  for (int allocations : {0, 1000, 4000}) {
    Bridge bridge({}, nullptr);
    JsonBuffer sb(snapshot);
    if (bridge.Handle(Verb::kOnSessionOpen, sb).status != 200) std::fprintf(stderr, "onSessionOpen failed\n");
    for (int i = 0; i < allocations; ++i) {
      synthetic::TaskSpec t;
      t.uid = "placed-" + std::to_string(i);
      t.job = "ml-team/placed-" + std::to_string(i);
      t.name = t.uid;
      t.node = c.nodes[static_cast<size_t>(i) % c.nodes.size()].name;
      t.cards = 1;
      t.status = 2;
      JsonBuffer eb(synthetic::TaskEventBody(t));
      if (bridge.Handle(Verb::kAllocate, eb).status != 200) std::fprintf(stderr, "allocate failed\n");
    }
    auto prioritize = [&] {
      Reply r = bridge.Handle(Verb::kPrioritize, pb);
      if (r.status != 200) std::fprintf(stderr, "prioritize failed: %s\n", r.error.c_str());
    };
    prioritize();
    auto tp = Time(quick ? 10 : 50, prioritize);
    char what[160];
    std::snprintf(what, sizeof what,
                  "prioritize 1000 nodes, single pod, session with %d allocations p50 / p99", allocations);
    g_rows.push_back({what, Millis(Percentile(tp, 0.5)) + " / " + Millis(Percentile(tp, 0.99)), ""});
  }
}

void InProcess(bool quick, const std::string& write_dir) {
  Bridge bridge({}, nullptr);
  const std::string predicate = PredicateBody();
  JsonBuffer buf(predicate);
  auto t = Time(quick ? 2000 : 20000, [&] { (void)bridge.Handle(Verb::kPredicate, buf); });
  g_rows.push_back(
      {"predicate in-process p50 / p99 (" + std::to_string(predicate.size() / 1024) + " KiB body)",
       Micros(Percentile(t, 0.5)) + " / " + Micros(Percentile(t, 0.99)), ""});
  if (!write_dir.empty()) std::ofstream(write_dir + "/predicate.json") << predicate;

  for (int nodes : {100, 1000, 5000}) {
    const std::string body = PrioritizeBody(nodes);
    JsonBuffer pb(body);
    const int reps =
        nodes >= 5000 ? (quick ? 5 : 30) : (nodes >= 1000 ? (quick ? 20 : 100) : (quick ? 100 : 500));
    auto prioritize = [&](Bridge& b) {
      Reply r = b.Handle(Verb::kPrioritize, pb);
      if (r.status != 200) std::fprintf(stderr, "prioritize failed: %s\n", r.error.c_str());
    };
    // The first call of a bridge allocates a parser for the body size (page faults on its
    // buffers); later calls reuse it, as they do while Volcano keeps scheduling. Both are shown.
    Bridge fresh({}, nullptr);
    const double cold = Time(1, [&] { prioritize(fresh); })[0];
    prioritize(bridge);
    auto tp = Time(reps, [&] { prioritize(bridge); });
    char what[128];
    std::snprintf(what, sizeof what, "prioritize %d nodes p50 / p99 (%.1f MiB body)", nodes,
                  static_cast<double>(body.size()) / (1 << 20));
    g_rows.push_back({what, Millis(Percentile(tp, 0.5)) + " / " + Millis(Percentile(tp, 0.99)),
                      nodes == 1000 ? "p99 < 20 ms" : ""});
    std::snprintf(what, sizeof what, "prioritize %d nodes, first call (parser allocated)", nodes);
    g_rows.push_back({what, Millis(cold), ""});
    if (!write_dir.empty() && nodes == 1000) std::ofstream(write_dir + "/prioritize-1000.json") << body;
  }

  synthetic::Cluster c = synthetic::MakeCluster(1000, 10, 5);
  const std::string snapshot = synthetic::SnapshotBody(c.nodes, c.jobs);
  c = synthetic::Cluster{};
  JsonBuffer sb(snapshot);
  const int reps = quick ? 3 : 10;
  // With a parser pool (as the bridge parses: the parser of the previous session is reused) and
  // without (a parser allocated and freed for each parse: the first session after an idle spell).
  ParserPool pool;
  for (ParserPool* parsers : {&pool, static_cast<ParserPool*>(nullptr)}) {
    ParseOptions opts;
    opts.parsers = parsers;
    auto ts = Time(reps, [&] {
      auto s = ParseSnapshot(sb, opts);
      if (!s.ok()) std::fprintf(stderr, "snapshot: %s\n", s.status().message().c_str());
    });
    const double best = *std::min_element(ts.begin(), ts.end());
    const double median = Percentile(ts, 0.5);
    char v[128];
    std::snprintf(v, sizeof v, "%.2f GB/s median, %.2f GB/s best",
                  static_cast<double>(snapshot.size()) / median / 1e9,
                  static_cast<double>(snapshot.size()) / best / 1e9);
    char what[160];
    std::snprintf(what, sizeof what, "onSessionOpen parse, 1000 nodes / 10000 pods (%.0f MiB)%s",
                  static_cast<double>(snapshot.size()) / (1 << 20),
                  parsers ? "" : ", fresh parser each time");
    g_rows.push_back({what, v, parsers ? ">= 1 GB/s" : ""});
  }
  auto th = Time(reps, [&] { (void)bridge.Handle(Verb::kOnSessionOpen, sb); });
  g_rows.push_back({"onSessionOpen handled (parse + state rebuild) p50 / max",
                    Millis(Percentile(th, 0.5)) + " / " + Millis(Percentile(th, 1.0)), ""});
  if (!write_dir.empty()) std::ofstream(write_dir + "/snapshot-1000.json") << snapshot;
  SessionPrioritize(quick);
}

// `clients` threads each send `per_client` requests; keep-alive or a new connection each time.
// Requests without a 200 answer are counted in *failed (when given) and left out of the times.
// With `duration` > 0 each client sends for that long instead of `per_client` times.
std::vector<double> HttpLoad(const std::string& host, int port, const std::string& body, int clients,
                             int per_client, bool keep_alive, int* failed = nullptr,
                             Clock::duration duration = Clock::duration::zero()) {
  std::vector<std::vector<double>> per(static_cast<size_t>(clients));
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client(host, port);
      client.set_keep_alive(keep_alive);
      client.set_tcp_nodelay(true);
      const auto end = Clock::now() + duration;
      for (int i = 0; duration > Clock::duration::zero() ? Clock::now() < end : i < per_client; ++i) {
        const auto t0 = Clock::now();
        auto res = client.Post("/predicate", body, "application/json");
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (!res || res->status != 200) {
          ++errors;
          continue;
        }
        if (i >= 10) per[static_cast<size_t>(c)].push_back(s);  // skip warm-up
      }
    });
  }
  for (auto& t : threads) t.join();
  if (errors) std::fprintf(stderr, "%d HTTP errors\n", errors.load());
  if (failed != nullptr) *failed = errors.load();
  std::vector<double> all;
  for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
  return all;
}

// The machine's floor next to a 1-client HTTP predicate row: the same request bytes (those the
// bench's HTTP client sends, captured on the floor server's own listening socket, so that its
// Host names that server) and the bridge's own answer to them, exchanged with a bare forked
// server blocked in epoll_wait that reads exactly the request's bytes and sends the answer
// (bench/floor.h); keep-alive, or a new connection per request that the server closes after its
// answer. `n` requests, the first 10 untimed, as HttpLoad does for the bridge.
void FloorRows(const std::string& host, int port, const std::string& body, bool keep, int n, int server_pid) {
  using namespace std::chrono_literals;
  std::string what = std::string("floor: same bytes to a bare epoll server, ") +
                     (keep ? "keep-alive" : "new connection") + ", 1 client (this machine)";
  auto skip = [&](const std::string& why) { g_rows.push_back({what, "not measured: " + why, ""}); };
  if (host != "127.0.0.1" && host != "localhost") return skip("the bridge is not on this machine");
  auto listener = hb::ListenOnLoopback();
  if (!listener.ok()) return skip(listener.status().message());
  std::thread client([&, port = listener->port] {
    httplib::Client c("127.0.0.1", port);  // as HttpLoad's clients
    c.set_keep_alive(keep);
    c.set_tcp_nodelay(true);
    (void)c.Post("/predicate", body, "application/json");
  });
  Result<std::string> request = [&]() -> Result<std::string> {
    auto conn = hb::AcceptOne(listener->fd.get(), 10s);
    if (!conn.ok()) return conn.status();
    auto r = hb::ReadHttpMessage(conn->get(), 10s);
    (void)hb::SendAllBytes(conn->get(), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return r;
  }();
  client.join();
  if (!request.ok()) return skip("capturing the request: " + request.status().message());
  Result<std::string> answer = [&]() -> Result<std::string> {
    auto conn = hb::ConnectToLoopback(port, 10s);
    if (!conn.ok()) return conn.status();
    if (auto s = hb::SendAllBytes(conn->get(), *request); !s.ok()) return s;
    return hb::ReadHttpMessage(conn->get(), 10s);
  }();
  if (!answer.ok()) return skip("the bridge's answer: " + answer.status().message());
  if (answer->compare(0, 12, "HTTP/1.1 200") != 0)
    return skip("the bridge answered " + answer->substr(0, 12));
  hb::FloorServer::Options o;
  o.request_bytes = request->size();
  o.answer = *answer;
  o.close_after_answer = !keep;
  auto server = hb::FloorServer::Tcp(std::move(*listener), std::move(o));
  if (!server.ok()) return skip(server.status().message());
  const pid_t pid = (*server)->pid();
  const hb::ProcCounters before = hb::ReadProcCounters(pid);
  auto us = hb::TimeRoundTrips(**server, *request, 10, n - 10);
  if (!us.ok()) return skip(us.status().message());
  std::vector<double> t;
  t.reserve(us->size());
  for (double u : *us) t.push_back(u / 1e6);
  what += ", " + std::to_string(request->size()) + " B in, " + std::to_string(answer->size()) + " B out";
  g_rows.push_back(
      {what + " p50 / p99", Micros(Percentile(t, 0.5)) + " / " + Micros(Percentile(t, 0.99)), "floor"});
  if (server_pid <= 0) return;  // as for the bridge: its counters are shown only for a bridge process
  const hb::PerRequest r = hb::Delta(before, hb::ReadProcCounters(pid), n);
  if (r.ok) {
    char v[160];
    std::snprintf(v, sizeof v, "%.1f µs CPU, %.2f wake-ups, %.2f preempted, %.1f µs wait", r.cpu_us,
                  r.voluntary, r.involuntary, r.wait_us);
    g_rows.push_back({"  floor server per request", v, ""});
  }
  const int traced = 210;  // as the bridge's strace pass
  const hb::Syscalls sc =
      hb::CountSyscalls(pid, [&] { (void)hb::TimeRoundTrips(**server, *request, traced, 0); });
  if (sc.total < 0) return;
  char v[32];
  std::snprintf(v, sizeof v, "%.1f", static_cast<double>(sc.total) / traced);
  g_rows.push_back({"  floor server syscalls per request (" + hb::TopSyscalls(sc, traced) + ")", v, ""});
}

void SlowlorisCase(const std::string& host, int port, bool quick, const std::string& fixture,
                   int server_pid = 0);

void Http(const std::string& url, bool quick, const std::string& fixture, int server_pid, bool slowloris) {
  std::unique_ptr<metrics::Registry> registry;
  std::unique_ptr<Bridge> bridge;
  std::unique_ptr<HttpServer> server;
  std::string host = "127.0.0.1";
  int port = 0;
  if (url.empty()) {
    registry = std::make_unique<metrics::Registry>();
    bridge = std::make_unique<Bridge>(BridgeOptions{}, registry.get());
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.max_connections_per_client = 1000;  // the slow connections share 127.0.0.1 (see run.sh)
    server = std::make_unique<HttpServer>(bridge.get(), registry.get(), o);
    if (!server->Start().ok()) return;
    port = server->port();
    server_pid = 0;  // the server's threads share this process with the clients: no per-request counters
  } else {
    auto colon = url.rfind(':');
    host = url.substr(0, colon);
    port = std::stoi(url.substr(colon + 1));
  }
  const int n = quick ? 300 : 3000;
  // The predicate rows for one request body: `label` names it in the rows; `client_counts` are
  // the numbers of concurrent clients measured.
  auto predicate_rows = [&](const std::string& body, const std::string& label,
                            std::initializer_list<int> client_counts) {
    for (bool keep : {true, false}) {
      for (int clients : client_counts) {
        const int per_client = clients == 1 ? n : n / 8;
        const hb::ProcCounters before =
            server_pid > 0 ? hb::ReadProcCounters(server_pid) : hb::ProcCounters{};
        auto t = HttpLoad(host, port, body, clients, per_client, keep);
        const std::string what = "HTTP predicate" + label + ", " + (keep ? "keep-alive" : "new connection") +
                                 ", " + std::to_string(clients) + " client" + (clients > 1 ? "s" : "");
        g_rows.push_back({what + " p50 / p99",
                          Micros(Percentile(t, 0.5)) + " / " + Micros(Percentile(t, 0.99)),
                          clients == 1 ? "p99 < 200 µs" : ""});
        // What the bridge process spent (only when it is a process of its own).
        [&] {
          if (server_pid <= 0) return;
          const hb::PerRequest r = hb::Delta(before, hb::ReadProcCounters(server_pid), clients * per_client);
          if (!r.ok) return;
          char v[160];
          std::snprintf(v, sizeof v, "%.1f µs CPU, %.2f wake-ups, %.2f preempted, %.1f µs wait", r.cpu_us,
                        r.voluntary, r.involuntary, r.wait_us);
          g_rows.push_back({"  server per request (" + hb::BusiestThreads(r) + ")", v, ""});
          if (clients != 1) return;
          // System calls per request, in a short pass of their own (strace slows the server down).
          const int traced = 200;
          const hb::Syscalls sc = hb::CountSyscalls(server_pid, [&] {
            (void)HttpLoad(host, port, body, 1, traced + 10, keep);  // HttpLoad skips 10 warm-up requests
          });
          if (sc.total < 0) return;
          std::snprintf(v, sizeof v, "%.1f", static_cast<double>(sc.total) / (traced + 10));
          g_rows.push_back(
              {"  server syscalls per request (" + hb::TopSyscalls(sc, traced + 10) + ")", v, ""});
        }();
        if (clients == 1) FloorRows(host, port, body, keep, n, server_pid);
      }
    }
  };
  // A synthetic node with 30 pods (106 KiB), then Volcano's own predicate request (the fixture,
  // about 20 KiB: the shape Volcano sends), one client.
  predicate_rows(PredicateBody(), "", {1, 16});
  std::ifstream in(fixture, std::ios::binary);
  const std::string volcano((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (volcano.empty()) {
    g_rows.push_back({"HTTP predicate (Volcano fixture)", "not measured: cannot read " + fixture, ""});
  } else {
    predicate_rows(volcano, " (Volcano fixture, " + std::to_string(volcano.size()) + " B)", {1});
  }
  if (slowloris) SlowlorisCase(host, port, quick, fixture);
}

// The slow client: a predicate's header plus one byte of its declared body.
constexpr std::string_view kSlowStart =
    "POST /predicate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    "Content-Length: 100000\r\n\r\n{";

// User + system CPU seconds used so far by process `pid` (/proc/PID/stat), -1 when unknown.
double CpuSeconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close_paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // fields 14 and 15: utime, stime (clock ticks)
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Holds `n` slow connections to `port`, reopening each one the server closes (checked every
// 20 ms). Counts, at each check, how many were still open before reopening.
class Slowloris {
 public:
  Slowloris(int port, int n) : port_(port) {
    for (int i = 0; i < n; ++i) fds_.push_back(Open());
    thread_ = std::thread([this] {
      while (!stop_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        int open = 0;
        for (int& fd : fds_) {
          if (fd >= 0 && !hyperaccel::testing::ClosedByPeer(fd, std::chrono::milliseconds(0))) {
            ++open;
            continue;
          }
          if (fd >= 0) close(fd);
          fd = Open();
          ++reopened_;
        }
        if (open < min_open_) min_open_ = open;
      }
    });
  }
  ~Slowloris() {
    stop_ = true;
    thread_.join();
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  Slowloris(const Slowloris&) = delete;
  Slowloris& operator=(const Slowloris&) = delete;
  int reopened() const { return reopened_.load(); }
  // The fewest held at one check since the last call (then starts over).
  int TakeMinOpen() { return min_open_.exchange(static_cast<int>(fds_.size())); }

 private:
  int Open() const {
    const int fd = hyperaccel::testing::ConnectLoopback(port_);
    if (fd >= 0) hyperaccel::testing::SendAll(fd, kSlowStart);
    return fd;
  }
  int port_;
  std::vector<int> fds_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> reopened_{0};
  std::atomic<int> min_open_{1 << 30};
};

// The case: 200 slow connections are held (and reopened when the server closes them)
// while a keep-alive client and a new-connection client, at the same time, each send Volcano's
// predicate request (the fixture) one after the other. Also without the attack, for comparison.
// With `server_pid`, also the server's CPU time in each phase.
void SlowlorisCase(const std::string& host, int port, bool quick, const std::string& fixture,
                   int server_pid) {
  hyperaccel::testing::RaiseFdLimit(4096);
  std::ifstream in(fixture, std::ios::binary);
  const std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (body.empty()) {
    std::fprintf(stderr, "cannot read the predicate fixture %s\n", fixture.c_str());
    return;
  }
  // Long enough for many rounds of the server closing the slow connections at their deadlines
  // (--body-timeout, 500 ms) and the attacker opening them again.
  const auto duration = std::chrono::seconds(quick ? 3 : 10);
  for (int slow : {0, 200}) {
    std::unique_ptr<Slowloris> attack;
    if (slow > 0) {
      attack = std::make_unique<Slowloris>(port, slow);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      attack->TakeMinOpen();
    }
    std::vector<double> times[2];
    int failed[2] = {0, 0};
    const double cpu_before = CpuSeconds(server_pid);
    const auto wall_before = Clock::now();
    std::thread keep_alive([&] { times[0] = HttpLoad(host, port, body, 1, 0, true, &failed[0], duration); });
    std::thread fresh([&] { times[1] = HttpLoad(host, port, body, 1, 0, false, &failed[1], duration); });
    keep_alive.join();
    fresh.join();
    const double wall = std::chrono::duration<double>(Clock::now() - wall_before).count();
    const double cpu = CpuSeconds(server_pid) - cpu_before;
    for (int k = 0; k < 2; ++k) {
      const auto& t = times[k];
      std::string value = Millis(Percentile(t, 0.5)) + " / " + Millis(Percentile(t, 0.99)) + ", " +
                          std::to_string(t.size()) + " requests";
      if (failed[k] > 0) value += " (" + std::to_string(failed[k]) + " failed)";
      g_rows.push_back({"HTTP predicate (fixture, " + std::to_string(body.size() / 1024) + " KiB), " +
                            (k == 0 ? "keep-alive" : "new connection") + " + the other client at once, " +
                            std::to_string(slow) + " slow connections p50 / p99",
                        value, slow > 0 ? "p99 < 5 ms" : ""});
    }
    if (server_pid > 0 && cpu_before >= 0) {
      char v[96];
      std::snprintf(v, sizeof v, "%.2f s of %.2f s (%.0f %% of one core)", cpu, wall, 100 * cpu / wall);
      g_rows.push_back(
          {"  server CPU time while both clients ran, " + std::to_string(slow) + " slow connections", v, ""});
    }
    if (attack) {
      g_rows.push_back(
          {"  slow connections open at every 20 ms check (fewest) / closed by the server and reopened",
           std::to_string(attack->TakeMinOpen()) + " of " + std::to_string(slow) + " / " +
               std::to_string(attack->reopened()),
           ""});
    }
  }
}

uint64_t RssKiB(int pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::stoull(line.substr(n + 1));
  }
  return 0;
}

// 16 connections post a maximum-size body at once; the server process's resident memory is
// sampled meanwhile. Prints the peak and how each request was answered.
int MemoryCase(const std::string& url, int pid, const std::string& body_file, size_t max_body) {
  std::ifstream in(body_file, std::ios::binary);
  std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (body.empty() || body.size() > max_body) {
    std::fprintf(stderr, "%s: empty or larger than --max-body-bytes\n", body_file.c_str());
    return 1;
  }
  body.resize(max_body, ' ');  // trailing whitespace keeps it one valid JSON object
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  const std::string header =
      "POST /onSessionOpen HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Connection: close\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  const uint64_t before = RssKiB(pid, "VmRSS:");
  std::atomic<bool> done{false};
  uint64_t peak = before;
  std::thread sampler([&] {
    while (!done) {
      peak = std::max(peak, RssKiB(pid, "VmRSS:"));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::vector<int> status(16, 0);
  std::vector<double> seconds(16, 0);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < status.size(); ++i) {
    clients.emplace_back([&, i] {
      const auto t0 = Clock::now();
      const int fd = hyperaccel::testing::ConnectLoopback(port);
      if (fd < 0) return;
      // Header, then the body in 1 MiB writes; a server that answers early (413/503) and closes
      // ends the writes.
      bool sent = hyperaccel::testing::SendAll(fd, header);
      for (size_t off = 0; sent && off < body.size(); off += size_t{1} << 20) {
        sent = hyperaccel::testing::SendAll(
            fd, std::string_view(body).substr(off, std::min(size_t{1} << 20, body.size() - off)));
      }
      const std::string answer = hyperaccel::testing::ReadUntilClosed(fd, std::chrono::seconds(30));
      close(fd);
      if (answer.size() >= 12 && answer.compare(0, 9, "HTTP/1.1 ") == 0)
        status[i] = std::stoi(answer.substr(9, 3));
      seconds[i] = std::chrono::duration<double>(Clock::now() - t0).count();
    });
  }
  for (auto& t : clients) t.join();
  done = true;
  sampler.join();
  std::map<int, int> by_status;
  for (int s : status) ++by_status[s];
  std::printf(
      "16 concurrent %zu-byte onSessionOpen bodies: server RSS %.1f MiB before, peak %.1f MiB "
      "(VmHWM %.1f MiB), %.1f MiB after\n",
      body.size(), static_cast<double>(before) / 1024, static_cast<double>(peak) / 1024,
      static_cast<double>(RssKiB(pid, "VmHWM:")) / 1024, static_cast<double>(RssKiB(pid, "VmRSS:")) / 1024);
  for (const auto& [s, count] : by_status) std::printf("  HTTP %d: %d request(s)\n", s, count);
  std::printf("  slowest request %.2f s\n", *std::max_element(seconds.begin(), seconds.end()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, write_dir, memory_body;
  std::string fixture = HYPERACCEL_PREDICATE_FIXTURE;
  int memory_pid = 0;
  size_t max_body = ServerOptions{}.max_body_bytes;
  bool quick = false;
  bool slowloris_only = false;
  bool http_only = false;
  bool session_only = false;
  int server_pid = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--url") && i + 1 < argc)
      url = argv[++i];
    else if (!std::strcmp(argv[i], "--memory") && i + 2 < argc) {
      memory_pid = std::atoi(argv[++i]);
      memory_body = argv[++i];
    } else if (!std::strcmp(argv[i], "--max-body-bytes") && i + 1 < argc)
      max_body = std::stoull(argv[++i]);
    else if (!std::strcmp(argv[i], "--write-bodies") && i + 1 < argc)
      write_dir = argv[++i];
    else if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--predicate-fixture") && i + 1 < argc)
      fixture = argv[++i];
    else if (!std::strcmp(argv[i], "--http-only"))
      http_only = true;
    else if (!std::strcmp(argv[i], "--session-only"))
      session_only = true;
    else if (!std::strcmp(argv[i], "--slowloris-only"))
      slowloris_only = true;
    else if (!std::strcmp(argv[i], "--server-pid") && i + 1 < argc)
      server_pid = std::atoi(argv[++i]);
    else {
      std::fprintf(
          stderr,
          "usage: %s [--url HOST:PORT [--server-pid PID]] [--write-bodies DIR] [--predicate-fixture FILE] "
          "[--quick]\n"
          "       %s --session-only [--quick]\n"
          "       %s --url HOST:PORT --slowloris-only [--server-pid PID] [--predicate-fixture FILE] "
          "[--quick]\n"
          "       %s --url HOST:PORT --memory PID BODY_FILE [--max-body-bytes N]\n",
          argv[0], argv[0], argv[0], argv[0]);
      return 2;
    }
  }
  log::SetLevel(log::Level::kError);
  if (!memory_body.empty()) {
    if (url.empty() || memory_pid <= 0) {
      std::fprintf(stderr, "--memory needs --url and the server's PID\n");
      return 2;
    }
    return MemoryCase(url, memory_pid, memory_body, max_body);
  }
  if (session_only) {
    SessionPrioritize(quick);
  } else if (slowloris_only) {
    if (url.empty()) {
      std::fprintf(stderr, "--slowloris-only needs --url\n");
      return 2;
    }
    const auto colon = url.rfind(':');
    SlowlorisCase(url.substr(0, colon), std::stoi(url.substr(colon + 1)), quick, fixture, server_pid);
  } else if (http_only) {
    Http(url, quick, fixture, server_pid, false);
  } else {
    InProcess(quick, write_dir);
    Http(url, quick, fixture, server_pid, true);
  }
  size_t w = 0;
  for (const auto& r : g_rows) w = std::max(w, r.what.size());
  std::printf("%-*s  %-34s  %s\n", static_cast<int>(w), "benchmark", "result", "target");
  for (const auto& r : g_rows)
    std::printf("%-*s  %-34s  %s\n", static_cast<int>(w), r.what.c_str(), r.value.c_str(), r.target.c_str());
  return 0;
}
