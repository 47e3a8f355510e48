// The real `hyperaccel-device-plugin` binary as the kubelet sees it: signals end it cleanly, and
// two instances on one kubelet directory do not fight (a rolling update hands over without a
// failed Allocate).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include "hyperaccel/kubelet_sim/kubelet_sim.h"
#include "process.h"

namespace hyperaccel::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kRes = "hyperaccel.ai/fpga";

class PluginInstancesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hdp-e2e-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    dir_ = root_ + "/dp";
    sim_ = std::make_unique<kubelet_sim::KubeletSim>(kubelet_sim::Options{dir_, ""});
    ASSERT_TRUE(sim_->Start().ok());
  }
  void TearDown() override {
    for (Child* c : {&a_, &b_}) {
      if (c->pid > 0) {
        ::kill(c->pid, SIGKILL);
        WaitForExit(*c, 5s);
      }
    }
    sim_.reset();
    fs::remove_all(root_);
  }
  Child Start(const std::string& name) {
    return StartBinary("hyperaccel-device-plugin",
                       {"--emulate=2", "--node-name=lpu-e2e", "--kubelet-dir=" + dir_,
                        "--metrics-address=off", "--rescan-ms=500"},
                       root_ + "/" + name + ".log");
  }
  bool Healthy(size_t n, std::chrono::milliseconds timeout) {
    return sim_->WaitForDevices(
        kRes,
        [n](const std::vector<kubelet_sim::Device>& d) {
          return d.size() == n && std::all_of(d.begin(), d.end(), [](auto& x) { return x.healthy; });
        },
        timeout);
  }
  std::string Socket() const { return dir_ + "/hyperaccel-fpga.sock"; }

  std::string root_, dir_;
  std::unique_ptr<kubelet_sim::KubeletSim> sim_;
  Child a_, b_;
};

TEST_F(PluginInstancesTest, HangupEndsThePluginCleanlyAndRemovesItsSocket) {
  a_ = Start("a");
  ASSERT_TRUE(Healthy(2, 20s)) << ReadLog(a_);
  ASSERT_TRUE(fs::exists(Socket()));
  ASSERT_EQ(::kill(a_.pid, SIGHUP), 0);
  const int code = WaitForExit(a_, 10s);
  EXPECT_EQ(code, 0) << "before: killed by SIGHUP (129) without cleanup\n" << ReadLog(a_);
  EXPECT_FALSE(fs::exists(Socket())) << "SIGHUP left the socket behind";
  EXPECT_NE(ReadLog(a_).find("shutting down"), std::string::npos);
}

TEST_F(PluginInstancesTest, RollingUpdateHandsOverWithoutAFailedAllocate) {
  a_ = Start("old");
  ASSERT_TRUE(Healthy(2, 20s)) << ReadLog(a_);
  const auto ids = [&] {
    std::vector<std::string> out;
    for (const auto& d : sim_->Devices(kRes)) out.push_back(d.id);
    return out;
  }();

  // The new pod starts while the old one still serves: it must wait, not take the socket.
  b_ = Start("new");
  std::this_thread::sleep_for(3s);  // the new one finds its cards and checks the lock many times
  EXPECT_EQ(sim_->Plugin(kRes)->registrations, 1) << "the instances fight:\n" << ReadLog(b_);
  EXPECT_NE(ReadLog(b_).find("waiting for it to exit"), std::string::npos) << ReadLog(b_);

  std::atomic<bool> done{false};
  std::atomic<int> ok{0};
  std::vector<std::string> failures;
  std::thread kubelet([&] {
    while (!done.load()) {
      auto r = sim_->Allocate(kRes, {ids[0]});
      if (r.ok()) {
        ok.fetch_add(1);
      } else {
        failures.push_back(r.status().ToString());
      }
      std::this_thread::sleep_for(2ms);
    }
  });
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(a_.pid, SIGTERM), 0);  // the DaemonSet deletes the old pod
  const bool registered = sim_->WaitForRegistrations(kRes, 2, 10s);
  const auto took = std::chrono::steady_clock::now() - t0;
  const int old_code = WaitForExit(a_, 10s);
  std::this_thread::sleep_for(300ms);
  done.store(true);
  kubelet.join();

  ASSERT_TRUE(registered) << ReadLog(b_);
  EXPECT_EQ(old_code, 0) << ReadLog(a_);
  // ~1 s is the goal; the bound leaves room for a loaded machine.
  EXPECT_LT(took, 2s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  std::cout << "hand-over: new instance registered "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms after SIGTERM to the old one; " << ok.load() << " Allocate calls, " << failures.size()
            << " failed\n";
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed Allocate calls, first: " << failures.front();
  EXPECT_GT(ok.load(), 10);
  EXPECT_TRUE(Healthy(2, 5s));
  EXPECT_TRUE(fs::exists(Socket())) << "the old instance removed its successor's socket";
  EXPECT_EQ(sim_->Plugin(kRes)->registrations, 2) << "registrations went on after the hand-over";

  ASSERT_EQ(::kill(b_.pid, SIGTERM), 0);
  EXPECT_EQ(WaitForExit(b_, 10s), 0) << ReadLog(b_);
  EXPECT_FALSE(fs::exists(Socket()));
}

// grpc-go, the kubelet's gRPC, against the real plugin: it dials the socket by path as the kubelet
// does (its :authority is that path), opens ListAndWatch and calls GetDevicePluginOptions,
// GetPreferredAllocation and Allocate (bench/go-kubelet-client, built when Go and grpc-go are
// installed). Each call checks its answer; a failed call makes the client exit non-zero.
TEST_F(PluginInstancesTest, GrpcGoClientListsPrefersAndAllocates) {
#ifndef HYPERACCEL_GO_KUBELET_CLIENT
  GTEST_SKIP() << "hyperaccel-go-kubelet-client is not built (Go or grpc-go not installed)";
#else
  a_ = StartBinary("hyperaccel-device-plugin",
                   {"--emulate=8", "--node-name=lpu-e2e", "--kubelet-dir=" + dir_, "--metrics-address=off"},
                   root_ + "/plugin.log");
  ASSERT_TRUE(Healthy(8, 20s)) << ReadLog(a_);
  const std::string cmd = std::string(HYPERACCEL_GO_KUBELET_CLIENT) + " -socket " + Socket() +
                          " -iterations 50 -runs 2 -k 4 2>&1";
  FILE* out = ::popen(cmd.c_str(), "r");
  ASSERT_NE(out, nullptr);
  std::string text;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), out) != nullptr) text += buf.data();
  ASSERT_EQ(::pclose(out), 0) << text << ReadLog(a_);
  int preferred = 0, allocate = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("RESULT GetPreferredAllocation ", 0) == 0) ++preferred;
    if (line.rfind("RESULT Allocate ", 0) == 0) ++allocate;
  }
  EXPECT_EQ(preferred, 2) << text;
  EXPECT_EQ(allocate, 2) << text;
  // The kubelet's own stream is untouched by the second client's.
  EXPECT_TRUE(sim_->WaitForStream(kRes, true, 1s));
#endif
}

}  // namespace
}  // namespace hyperaccel::testing
