// Small ClaimPreparer/HealthSource implementations for the node-server tests, benchmark and helper
// process: deterministic answers derived from the claim, with switches for failures and blocking.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "hyperaccel/dra_driver/node_service.h"

namespace hyperaccel::dra::testing {

// Claim names steer the answer:
//   "fail-..."  -> the claim's error is "cannot prepare <name>"
//   "drop-..."  -> the claim is missing from the answer (the server must fill in an error)
//   otherwise   -> one device "<name>-card" in pool "node-a" with CDI ID
//                  "k8s.fpga.hyperaccel.ai/claim=<uid>-card", for every request
// With `block` set, Prepare signals `entered` (and touches `entered_file` if set), then waits
// until `block` is cleared.
class FakePreparer final : public ClaimPreparer {
 public:
  std::map<std::string, ClaimPrepareResult> Prepare(const std::vector<ClaimRef>& claims) override {
    {
      std::unique_lock lock(mu_);
      ++prepare_calls_;
      last_batch_ = claims;
      entered_ = true;
      cv_.notify_all();
      if (!entered_file.empty()) std::ofstream(entered_file) << "entered\n";
      cv_.wait(lock, [&] { return !block_; });
    }
    std::map<std::string, ClaimPrepareResult> out;
    for (const ClaimRef& c : claims) {
      if (c.name.rfind("drop-", 0) == 0) continue;
      ClaimPrepareResult r;
      if (c.name.rfind("fail-", 0) == 0) {
        r.error = "cannot prepare " + c.name;
      } else {
        PreparedDevice d;
        d.pool_name = "node-a";
        d.device_name = c.name + "-card";
        d.cdi_device_ids = {"k8s.fpga.hyperaccel.ai/claim=" + c.uid + "-card"};
        r.devices.push_back(d);
        std::lock_guard lock(mu_);
        prepared_.insert(c.uid);
      }
      out[c.uid] = r;
    }
    return out;
  }

  std::map<std::string, std::string> Unprepare(const std::vector<ClaimRef>& claims) override {
    std::map<std::string, std::string> out;
    std::lock_guard lock(mu_);
    ++unprepare_calls_;
    for (const ClaimRef& c : claims) {
      if (c.name.rfind("drop-", 0) == 0) continue;
      out[c.uid] = c.name.rfind("fail-", 0) == 0 ? "cannot unprepare " + c.name : "";
      prepared_.erase(c.uid);
    }
    return out;
  }

  void SetBlock(bool b) {
    {
      std::lock_guard lock(mu_);
      block_ = b;
      if (b) entered_ = false;
    }
    cv_.notify_all();
  }
  bool WaitEntered(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return entered_; });
  }
  std::set<std::string> prepared() const {
    std::lock_guard lock(mu_);
    return prepared_;
  }
  int prepare_calls() const {
    std::lock_guard lock(mu_);
    return prepare_calls_;
  }
  std::vector<ClaimRef> last_batch() const {
    std::lock_guard lock(mu_);
    return last_batch_;
  }

  std::string entered_file;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool block_ = false;
  bool entered_ = false;
  int prepare_calls_ = 0;
  int unprepare_calls_ = 0;
  std::set<std::string> prepared_;
  std::vector<ClaimRef> last_batch_;
};

// A device list the test sets; every Set is a new generation.
class FakeHealth final : public HealthSource {
 public:
  void Set(std::vector<DeviceHealth> devices) {
    {
      std::lock_guard lock(mu_);
      devices_ = std::move(devices);
      ++generation_;
    }
    cv_.notify_all();
  }
  std::vector<DeviceHealth> Snapshot(uint64_t* generation) override {
    std::lock_guard lock(mu_);
    if (generation) *generation = generation_;
    return devices_;
  }
  uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return generation_ != seen; });
    return generation_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<DeviceHealth> devices_;
  uint64_t generation_ = 1;
};

inline std::vector<DeviceHealth> Devices(int n, int unhealthy = -1, const std::string& message = "") {
  std::vector<DeviceHealth> out;
  for (int i = 0; i < n; ++i) {
    DeviceHealth d;
    d.pool_name = "node-a";
    d.device_name = "card-" + std::to_string(i);
    d.status = i == unhealthy ? DeviceHealthStatus::kUnhealthy : DeviceHealthStatus::kHealthy;
    d.last_updated_unix = 1700000000 + i;
    if (i == unhealthy) d.message = message;
    out.push_back(d);
  }
  return out;
}

}  // namespace hyperaccel::dra::testing
