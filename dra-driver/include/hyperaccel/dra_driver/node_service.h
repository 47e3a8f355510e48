// The kubelet side of the DRA driver, independent of the wire: what NodePrepareResources,
// NodeUnprepareResources and NodeWatchResources answer. The gRPC servers (registration, the
// v1/v1beta1 DRAPlugin services and the health stream) translate the kubelet's messages to these
// types and back; the claim preparer (API lookup, CDI specs, checkpoint) implements them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hyperaccel::dra {

// A claim as the kubelet names it: identity only, no spec (reference dra.md §2.1).
struct ClaimRef {
  std::string ns;
  std::string name;
  std::string uid;
};

// One allocated device handed to the container runtime.
struct PreparedDevice {
  std::vector<std::string> request_names;  // empty: applies to every request of the claim
  std::string pool_name;
  std::string device_name;
  std::vector<std::string> cdi_device_ids;  // fully qualified "<vendor>/<class>=<name>"
};

// The answer for one claim. A non-empty `error` marks the claim failed (the kubelet retries);
// `devices` is then ignored.
struct ClaimPrepareResult {
  std::vector<PreparedDevice> devices;
  std::string error;
};

// Prepares and unprepares claims. Implementations are thread-safe, idempotent (the kubelet
// repeats calls after restarts and timeouts) and never throw: every per-claim failure goes in the
// claim's error. Results are keyed by claim UID and contain every requested UID.
class ClaimPreparer {
 public:
  virtual ~ClaimPreparer() = default;
  virtual std::map<std::string, ClaimPrepareResult> Prepare(const std::vector<ClaimRef>& claims) = 0;
  // UID -> error ("" = success). An unknown claim is a success.
  virtual std::map<std::string, std::string> Unprepare(const std::vector<ClaimRef>& claims) = 0;
};

enum class DeviceHealthStatus { kUnknown = 0, kHealthy = 1, kUnhealthy = 2 };

struct DeviceHealth {
  std::string pool_name;
  std::string device_name;
  DeviceHealthStatus status = DeviceHealthStatus::kUnknown;
  int64_t last_updated_unix = 0;  // seconds
  std::string message;            // why, when not healthy (the stream truncates to 1024 bytes)
};

// The complete device list of this node's pool with health, for NodeWatchResources. Thread-safe.
class HealthSource {
 public:
  virtual ~HealthSource() = default;
  // Every device the driver publishes (cards and arcs), and the generation it belongs to.
  virtual std::vector<DeviceHealth> Snapshot(uint64_t* generation) = 0;
  // Blocks until the generation differs from `seen` or `timeout` passes; returns the current one.
  virtual uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) = 0;
};

}  // namespace hyperaccel::dra
