// What a server process spends per request, read from /proc around a batch of requests: CPU time,
// context switches (every thread, so each hand-off between threads shows), time spent runnable
// but waiting for a CPU, and, with strace, system calls. Unlike wall-clock percentiles these hardly
// depend on what else the machine runs, so they can be compared between runs on a shared machine.
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace hyperaccel::bench {

struct ThreadCounters {
  std::string name;          // /proc/PID/task/TID/comm
  uint64_t run_ns = 0;       // on a CPU (schedstat)
  uint64_t wait_ns = 0;      // runnable, waiting for a CPU (schedstat)
  uint64_t voluntary = 0;    // blocked (waited for I/O, a lock, a condition)
  uint64_t involuntary = 0;  // preempted
};

struct ProcCounters {
  std::map<int, ThreadCounters> threads;  // by thread ID
  bool ok = false;
};

namespace detail {

inline uint64_t StatusField(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      return std::stoull(line.substr(key.size() + 1));
    }
  }
  return 0;
}

}  // namespace detail

// Reads every thread of process `pid`. A thread that ends between two reads takes its counts
// with it (the daemons measured here keep their threads).
inline ProcCounters ReadProcCounters(pid_t pid) {
  namespace fs = std::filesystem;
  ProcCounters c;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string tdir = entry.path().string();
    ThreadCounters t;
    std::ifstream(tdir + "/comm") >> t.name;
    std::ifstream sched(tdir + "/schedstat");
    if (!(sched >> t.run_ns >> t.wait_ns)) continue;
    t.voluntary = detail::StatusField(tdir + "/status", "voluntary_ctxt_switches");
    t.involuntary = detail::StatusField(tdir + "/status", "nonvoluntary_ctxt_switches");
    c.threads[std::stoi(entry.path().filename().string())] = std::move(t);
  }
  c.ok = !c.threads.empty();
  return c;
}

// The counters of a batch of requests, divided by the number of requests.
struct PerRequest {
  double cpu_us = 0;        // CPU time of all threads
  double wait_us = 0;       // runnable but not running
  double voluntary = 0;     // context switches: the thread blocked (a wake-up follows each)
  double involuntary = 0;   // context switches: the thread was preempted
  int threads_running = 0;  // threads that ran at all during the batch
  // Threads by context switches per request (name, switches per request), busiest first.
  std::vector<std::pair<std::string, double>> by_thread;
  bool ok = false;
};

inline PerRequest Delta(const ProcCounters& before, const ProcCounters& after, int requests) {
  PerRequest r;
  if (!before.ok || !after.ok || requests <= 0) return r;
  const double n = requests;
  std::map<std::string, double> switches_by_name;
  for (const auto& [tid, a] : after.threads) {
    auto it = before.threads.find(tid);
    const ThreadCounters b = it == before.threads.end() ? ThreadCounters{} : it->second;
    const uint64_t run = a.run_ns - std::min(a.run_ns, b.run_ns);
    const uint64_t vol = a.voluntary - std::min(a.voluntary, b.voluntary);
    const uint64_t invol = a.involuntary - std::min(a.involuntary, b.involuntary);
    r.cpu_us += static_cast<double>(run) / 1e3 / n;
    r.wait_us += static_cast<double>(a.wait_ns - std::min(a.wait_ns, b.wait_ns)) / 1e3 / n;
    r.voluntary += static_cast<double>(vol) / n;
    r.involuntary += static_cast<double>(invol) / n;
    if (run > 0 || vol + invol > 0) {
      ++r.threads_running;
      switches_by_name[a.name] += static_cast<double>(vol + invol) / n;
    }
  }
  for (const auto& [name, s] : switches_by_name) r.by_thread.emplace_back(name, s);
  std::sort(r.by_thread.begin(), r.by_thread.end(),
            [](const auto& x, const auto& y) { return x.second > y.second; });
  r.ok = true;
  return r;
}

// "name 2.0, name 1.0" for the `limit` busiest threads (switches per request at least 0.05).
inline std::string BusiestThreads(const PerRequest& r, size_t limit = 4) {
  std::string out;
  for (size_t i = 0; i < r.by_thread.size() && i < limit; ++i) {
    if (r.by_thread[i].second < 0.05) break;
    char b[96];
    std::snprintf(b, sizeof b, "%s%s %.1f", out.empty() ? "" : ", ", r.by_thread[i].first.c_str(),
                  r.by_thread[i].second);
    out += b;
  }
  return out.empty() ? "-" : out;
}

// System calls of a process while `drive` runs, counted by `strace -f -c` attached to it (every
// thread). strace slows the process down many times over: run this apart from any timing.
// Returns the total calls and the most frequent ones ("name count"), or an empty total (-1) when
// strace is missing or could not attach.
struct Syscalls {
  long total = -1;
  std::vector<std::pair<std::string, long>> top;  // most frequent first
};

template <typename Drive>
Syscalls CountSyscalls(pid_t pid, Drive&& drive) {
  Syscalls s;
  if (::access("/usr/bin/strace", X_OK) != 0) return s;
  std::string out_file = (std::filesystem::temp_directory_path() / "hyperaccel-strace-XXXXXX").string();
  const int fd = ::mkstemp(out_file.data());
  if (fd < 0) return s;
  ::close(fd);
  const pid_t tracer = ::fork();
  if (tracer == 0) {
    const std::string p = std::to_string(pid);
    ::execl("/usr/bin/strace", "strace", "-f", "-c", "-q", "-o", out_file.c_str(), "-p", p.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  if (tracer < 0) return s;
  // Attaching to every thread takes a moment; strace has no "attached" signal with -o.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  drive();
  ::kill(tracer, SIGINT);
  int status = 0;
  ::waitpid(tracer, &status, 0);
  std::ifstream in(out_file);
  ::unlink(out_file.c_str());  // the open stream still reads it
  std::string line;
  while (std::getline(in, line)) {
    // "% time     seconds  usecs/call     calls    errors syscall"; rows have 5 or 6 columns.
    std::istringstream row(line);
    std::vector<std::string> cols;
    for (std::string c; row >> c;) cols.push_back(c);
    if (cols.size() < 5 || cols[0].find_first_not_of("0123456789.") != std::string::npos) continue;
    const std::string& name = cols.back();
    const long calls = std::atol(cols[3].c_str());
    if (name == "total") {
      s.total = calls;
    } else {
      s.top.emplace_back(name, calls);
    }
  }
  std::sort(s.top.begin(), s.top.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return s;
}

// "name 2.0, name 1.0": the `limit` most frequent system calls per request.
inline std::string TopSyscalls(const Syscalls& s, int requests, size_t limit = 5) {
  if (s.total < 0 || requests <= 0) return "-";
  std::string out;
  for (size_t i = 0; i < s.top.size() && i < limit; ++i) {
    char b[96];
    std::snprintf(b, sizeof b, "%s%s %.1f", out.empty() ? "" : ", ", s.top[i].first.c_str(),
                  static_cast<double>(s.top[i].second) / requests);
    out += b;
  }
  return out;
}

}  // namespace hyperaccel::bench
