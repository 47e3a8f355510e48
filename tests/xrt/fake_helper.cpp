// A stand-in for hyperaccel-xrt-probe that misbehaves on demand, for the tests of the helper runner
// and of the probe that reads its answers (xrt_helper_test.cpp). The behaviour is
// $HYPERACCEL_FAKE_HELPER_MODE, else argv[1]; the remaining arguments are the request.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

void Out(const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) std::_Exit(50);
    done += static_cast<size_t>(n);
  }
}

std::string Card(const std::string& bdf) {
  return R"({"bdf":")" + bdf + R"(","name":"xilinx_u55c_gen3x16_xdma_base_3","serial":"XFL1FAKE)" +
         bdf.substr(5, 2) +
         R"(","xclbin_uuid":"","last_error":"","sensors":{"fpga_temp_c":41.5,"power_w":23.0,"cage_temp_c":[30.0,null],"bad_readings":[]}})";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1,
                                argv + argc);  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
  const char* env = std::getenv("HYPERACCEL_FAKE_HELPER_MODE");  // NOLINT(concurrency-mt-unsafe)
  std::string mode;
  if (env != nullptr && *env != '\0') {
    mode = env;
  } else if (!args.empty()) {
    mode = args.front();
    args.erase(args.begin());
  }
  const std::string request = args.empty() ? "" : args.front();

  if (mode == "answer") {  // a well-formed answer to whatever was asked
    if (request == "facts") {
      Out(R"J({"v":1,"xrt_available":true,"xrt_version":"2.13.0","xrt_detail":"driver xocl; 2 ready device(s)","emulation":false})J");
    } else if (request == "opencl") {
      Out(R"J({"v":1,"xilinx":true,"detail":"platforms: Xilinx (Xilinx)"})J");
    } else if (request == "lib-dir") {
      Out(R"({"v":1,"coreutil_dir":"/usr/lib/x86_64-linux-gnu"})");
    } else if (request == "emulated") {
      Out(R"({"v":1,"devices":[)" + Card("0000:00:00.0") + "," + Card("0000:00:01.0") + "]}");
    } else if (request == "cards") {
      std::string list;
      for (size_t i = 1; i < args.size(); ++i) {
        if (!list.empty()) list += ",";
        if (args[i].rfind("0000:ff", 0) == 0) {
          list += R"({"bdf":")" + args[i] + R"(","error":"XRT cannot open it: No such device"})";
        } else {
          list += R"({"bdf":")" + args[i] + R"(","info":)" + Card(args[i]) + "}";
        }
      }
      Out(R"({"v":1,"cards":[)" + list + "]}");
    } else {
      std::fprintf(stderr, "fake: unknown request \"%s\"\n", request.c_str());
      return 2;
    }
    return 0;
  }
  if (mode == "malformed") {
    Out("CRITICAL WARNING: [SW-EM 09-0] Unable to find emconfig.json\n{\"v\":1}");
    return 0;
  }
  if (mode == "truncated") {
    Out(R"({"v":1,"xrt_available":true,"xrt_version":"2.1)");
    return 0;
  }
  if (mode == "empty") return 0;
  if (mode == "not-object") {
    Out("[1,2,3]");
    return 0;
  }
  if (mode == "wrong-types") {
    Out(R"({"v":1,"xrt_available":"yes","xrt_version":"2.13.0","xrt_detail":"","emulation":false,"cards":{},"devices":[{"bdf":7}],"xilinx":1,"detail":"x"})");
    return 0;
  }
  if (mode == "wrong-version") {
    Out(R"({"v":99,"xrt_available":true})");
    return 0;
  }
  if (mode == "wrong-cards") {  // an answer about other cards than the ones asked for
    Out(R"({"v":1,"cards":[)" + Card("0000:3b:00.1") + "]}");
    return 0;
  }
  if (mode == "fail") {
    std::fprintf(stderr, "some XRT noise\nhyperaccel-xrt-probe: XRT emulation: no emulation shim\n");
    return 3;
  }
  if (mode == "crash") {
    Out(R"({"v":1,"xrt_av)");
    std::fprintf(stderr, "about to crash\n");
    std::signal(SIGSEGV, SIG_DFL);  // die of the signal even where a sanitizer catches it
    ::raise(SIGSEGV);
    return 0;
  }
  if (mode == "sleep") {
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return 0;
  }
  if (mode == "close-and-sleep") {  // closes its output but does not exit
    ::close(STDOUT_FILENO);
    ::close(STDERR_FILENO);
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return 0;
  }
  if (mode == "grandchild") {  // answers and exits, but leaves a process that holds stdout open
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::this_thread::sleep_for(std::chrono::seconds(30));
      std::_Exit(0);
    }
    std::fprintf(stderr, "grandchild %d\n", static_cast<int>(pid));
    Out(R"({"v":1,"xilinx":false,"detail":"ok"})");
    return 0;
  }
  if (mode == "sleep-grandchild") {  // a grandchild in the same group, and no answer in time
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::this_thread::sleep_for(std::chrono::seconds(30));
      std::_Exit(0);
    }
    const char* pidfile = std::getenv("HYPERACCEL_FAKE_PIDFILE");  // NOLINT(concurrency-mt-unsafe)
    if (pidfile != nullptr) {
      FILE* f = std::fopen(pidfile, "w");
      if (f != nullptr) {
        std::fprintf(f, "%d\n", static_cast<int>(pid));
        std::fclose(f);
      }
    }
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return 0;
  }
  if (mode == "flood") {  // more than any answer
    const std::string chunk(1 << 16, 'x');
    for (int i = 0; i < 256; ++i) Out(chunk);
    return 0;
  }
  if (mode == "chatty") {  // a lot on stderr (more than a pipe holds), then the answer
    const std::string line(1000, 'n');
    for (int i = 0; i < 2000; ++i) std::fprintf(stderr, "%s\n", line.c_str());
    std::fprintf(stderr, "last words\n");
    Out(R"({"v":1,"xilinx":false,"detail":"after noise"})");
    return 0;
  }
  if (mode == "environment") {  // what the child was given
    struct sigaction sa {};
    ::sigaction(SIGPIPE, nullptr, &sa);
    sigset_t mask;
    sigemptyset(&mask);
    ::pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    char c = 0;
    const ssize_t in = ::read(STDIN_FILENO, &c, 1);
    int open_fds = 0;
    for (int fd = 3; fd < 1024; ++fd) open_fds += ::fcntl(fd, F_GETFD) >= 0 ? 1 : 0;
    const char* marker = std::getenv("HYPERACCEL_FAKE_MARKER");  // NOLINT(concurrency-mt-unsafe)
    Out(std::string(R"({"sigpipe_default":)") + (sa.sa_handler == SIG_DFL ? "true" : "false") +
        R"(,"usr1_blocked":)" + (sigismember(&mask, SIGUSR1) != 0 ? "true" : "false") + R"(,"stdin_eof":)" +
        (in == 0 ? "true" : "false") + R"(,"extra_fds":)" + std::to_string(open_fds) + R"(,"own_group":)" +
        (::getpgrp() == ::getpid() ? "true" : "false") + R"(,"marker":")" +
        (marker != nullptr ? marker : "") + "\"}");
    return 0;
  }
  std::fprintf(stderr, "fake: unknown mode \"%s\"\n", mode.c_str());
  return 2;
}
