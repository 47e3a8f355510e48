// DirWatcher: which changes call back (sockets yes, other files no), a directory removed and made
// again is watched again, a missing directory is watched once it appears, the periodic and first
// calls, and no calls after Stop. Waits are generous: the machine may be loaded.
#include "hyperaccel/common/dir_watcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

namespace hyperaccel {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr milliseconds kWait{10000};
// How long a change that must not call back is given to do so anyway.
constexpr milliseconds kQuiet{300};

// Counts on_event calls and lets the test wait for a count.
class Calls {
 public:
  void Add() {
    {
      std::lock_guard lock(mu_);
      ++n_;
    }
    cv_.notify_all();
  }
  int Get() const {
    std::lock_guard lock(mu_);
    return n_;
  }
  bool WaitAtLeast(int n) const {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return n_ >= n; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  int n_ = 0;
};

bool WaitFor(const std::function<bool()>& cond) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

void Touch(const fs::path& p) { std::ofstream(p) << "x"; }

class DirWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hyperaccel-watch-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  Calls calls_;
};

TEST_F(DirWatcherTest, ReportsSocketChangesButNotOtherFiles) {
  fs::create_directories(dir_);
  DirWatcherOptions o;
  o.dir = dir_.string();
  o.suffix = ".sock";
  DirWatcher w(o, [this] { calls_.Add(); });
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return w.watching(); }));
  EXPECT_EQ(calls_.Get(), 0) << "no first call unless asked for";

  Touch(dir_ / "notes.txt");
  fs::remove(dir_ / "notes.txt");
  std::this_thread::sleep_for(kQuiet);
  EXPECT_EQ(calls_.Get(), 0) << "a file without the suffix changed";

  Touch(dir_ / "kubelet.sock");
  ASSERT_TRUE(calls_.WaitAtLeast(1)) << "created";
  const int after_create = calls_.Get();
  fs::remove(dir_ / "kubelet.sock");
  EXPECT_TRUE(calls_.WaitAtLeast(after_create + 1)) << "removed";
}

TEST_F(DirWatcherTest, EmptySuffixReportsEveryEntry) {
  fs::create_directories(dir_);
  DirWatcherOptions o;
  o.dir = dir_.string();
  DirWatcher w(o, [this] { calls_.Add(); });
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return w.watching(); }));
  Touch(dir_ / "notes.txt");
  EXPECT_TRUE(calls_.WaitAtLeast(1));
}

TEST_F(DirWatcherTest, WatchesAgainAfterTheDirectoryIsRemoved) {
  std::atomic<int> prepared{0};
  DirWatcherOptions o;
  o.dir = dir_.string();
  o.suffix = ".sock";
  o.before_watch = [&] {
    fs::create_directories(dir_);
    ++prepared;
  };
  DirWatcher w(o, [this] { calls_.Add(); });
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return w.watching(); }));
  EXPECT_EQ(prepared.load(), 1);

  fs::remove_all(dir_);
  // The lost watch is set up again (before_watch makes the directory) and reported once done.
  ASSERT_TRUE(calls_.WaitAtLeast(1));
  EXPECT_GE(prepared.load(), 2);
  ASSERT_TRUE(WaitFor([&] { return w.watching() && fs::exists(dir_); }));

  const int before = calls_.Get();
  Touch(dir_ / "plugin.sock");
  EXPECT_TRUE(calls_.WaitAtLeast(before + 1)) << "the new directory is watched";
}

TEST_F(DirWatcherTest, PollsForAMissingDirectoryAndReportsWhenItAppears) {
  DirWatcherOptions o;
  o.dir = dir_.string();
  o.interval = milliseconds(20);
  DirWatcher w(o, [this] { calls_.Add(); });
  ASSERT_TRUE(w.Start().ok());
  std::this_thread::sleep_for(kQuiet);
  EXPECT_FALSE(w.watching());
  EXPECT_EQ(calls_.Get(), 0) << "failed retries alone do not call back";

  fs::create_directories(dir_);
  EXPECT_TRUE(WaitFor([&] { return w.watching(); }));
  EXPECT_TRUE(calls_.WaitAtLeast(1)) << "the directory may have changed before the watch";
}

TEST_F(DirWatcherTest, FirstAndPeriodicCallsWithoutChanges) {
  fs::create_directories(dir_);
  DirWatcherOptions o;
  o.dir = dir_.string();
  o.interval = milliseconds(20);
  o.periodic = true;
  o.notify_first = true;
  DirWatcher w(o, [this] { calls_.Add(); });
  ASSERT_TRUE(w.Start().ok());
  EXPECT_TRUE(calls_.WaitAtLeast(4));
}

TEST_F(DirWatcherTest, NoCallsAfterStopAndStopIsIdempotent) {
  fs::create_directories(dir_);
  DirWatcherOptions o;
  o.dir = dir_.string();
  DirWatcher w(o, [this] { calls_.Add(); });
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(w.Start().ok()) << "a second Start does nothing";
  ASSERT_TRUE(WaitFor([&] { return w.watching(); }));
  w.Stop();
  EXPECT_FALSE(w.watching());
  Touch(dir_ / "a.sock");
  std::this_thread::sleep_for(kQuiet);
  EXPECT_EQ(calls_.Get(), 0);
  w.Stop();

  // Started again after a stop, it watches again.
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return w.watching(); }));
  Touch(dir_ / "b.sock");
  EXPECT_TRUE(calls_.WaitAtLeast(1));
}

}  // namespace
}  // namespace hyperaccel
