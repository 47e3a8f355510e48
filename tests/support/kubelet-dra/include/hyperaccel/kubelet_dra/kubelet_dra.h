// A fake kubelet for DRA drivers (reference dra.md §2.2, §8): it discovers plugins the way the
// kubelet's plugin watcher does — inotify on the registry directory (created if missing), a walk
// of the sockets already there at start, names starting with '.' ignored, a re-created socket
// registered again — then calls GetInfo, validates type/name/endpoint, takes the FIRST advertised
// service it knows, dials the endpoint and answers with NotifyRegistrationStatus. It then calls
// NodePrepareResources/NodeUnprepareResources with the chosen version, and reads the
// NodeWatchResources health stream. Subdirectories of the registry are not watched (the kubelet
// does; no driver here registers from one).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hyperaccel/common/status.h"

namespace hyperaccel::kubelet_dra {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string registry_dir;  // <kubelet-dir>/plugins_registry
  // Services this kubelet knows (1.34–1.36 know both; a 1.32/1.33 kubelet only v1beta1).
  std::vector<std::string> known_services = {"v1.DRAPlugin", "v1beta1.DRAPlugin"};
  std::chrono::milliseconds call_timeout{45000};  // the kubelet's per-call timeout
  std::chrono::milliseconds dial_timeout{2000};
};

struct Registration {
  std::string socket;  // registration socket
  std::string type;
  std::string name;
  std::string endpoint;
  std::vector<std::string> advertised;
  std::string service;  // the one chosen; empty when rejected
  bool ok = false;
  std::string error;
  Clock::time_point seen_at;  // socket noticed
  Clock::time_point done_at;  // NotifyRegistrationStatus sent
};

struct Claim {
  std::string ns;
  std::string name;
  std::string uid;
};

struct Device {
  std::vector<std::string> request_names;
  std::string pool_name;
  std::string device_name;
  std::vector<std::string> cdi_device_ids;
};

struct ClaimAnswer {
  std::vector<Device> devices;
  std::string error;
};

struct CallResult {
  grpc::Status status;
  std::string service;                        // the version used
  std::map<std::string, ClaimAnswer> claims;  // by UID, as the plugin answered
};

struct HealthEntry {
  std::string pool_name;
  std::string device_name;
  int health = 0;  // 0 unknown, 1 healthy, 2 unhealthy
  int64_t last_updated = 0;
  int64_t timeout_seconds = 0;
  std::string message;
};

// One NodeWatchResources stream, read on its own thread.
class HealthStream {
 public:
  ~HealthStream();
  HealthStream(const HealthStream&) = delete;
  HealthStream& operator=(const HealthStream&) = delete;

  // Waits until at least `count` messages arrived; returns them all (fewer on timeout).
  std::vector<std::vector<HealthEntry>> WaitMessages(size_t count, std::chrono::milliseconds timeout);
  // Waits until the stream ended (by the server or Cancel); its status.
  std::optional<grpc::Status> WaitEnded(std::chrono::milliseconds timeout);
  void Cancel();

 private:
  friend class FakeKubelet;
  HealthStream() = default;
  struct State;
  std::shared_ptr<State> state_;
  std::thread reader_;
};

class FakeKubelet {
 public:
  explicit FakeKubelet(Options options);
  ~FakeKubelet();
  FakeKubelet(const FakeKubelet&) = delete;
  FakeKubelet& operator=(const FakeKubelet&) = delete;

  // Creates the registry directory if missing, starts watching, registers sockets already there.
  Status Start();
  void Stop();

  // Every registration attempt, oldest first.
  std::vector<Registration> Registrations() const;
  // Waits until `driver` has at least `count` successful registrations; returns the latest.
  std::optional<Registration> WaitRegistered(const std::string& driver, size_t count,
                                             std::chrono::milliseconds timeout) const;
  // The driver's current registration (removed when its registration socket is deleted).
  std::optional<Registration> Current(const std::string& driver) const;

  CallResult Prepare(const std::string& driver, const std::vector<Claim>& claims);
  CallResult Unprepare(const std::string& driver, const std::vector<Claim>& claims);
  // Opens NodeWatchResources (v1alpha1) on the driver's endpoint.
  std::unique_ptr<HealthStream> WatchHealth(const std::string& driver);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hyperaccel::kubelet_dra
