// Where the device plugin learns which cards exist: a small interface that hands out Inventory
// snapshots, fed in production by hw::Discovery + hw::Rescanner and in tests by hand.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::hw {
class Discovery;
class Rescanner;
}  // namespace hyperaccel::hw

namespace hyperaccel::device_plugin {

class DeviceSource {
 public:
  // Called with the first inventory as soon as it is known and again after every change, from
  // a thread owned by the source. Calls never overlap.
  using Listener = std::function<void(const hw::Inventory&)>;

  virtual ~DeviceSource() = default;
  // Starts producing inventories. Errors only when the source cannot run at all.
  virtual Status Start(Listener listener) = 0;
  // Stops producing; no listener call is running or will run after it returns.
  virtual void Stop() = 0;
};

// A source whose inventories are handed in by the caller (tests, benchmarks, demos).
class ManualDeviceSource final : public DeviceSource {
 public:
  ManualDeviceSource() = default;
  explicit ManualDeviceSource(hw::Inventory initial);

  Status Start(Listener listener) override;
  void Stop() override;
  // Delivers `inventory` to the listener (synchronously, in the caller's thread) when started;
  // otherwise keeps it for Start().
  void Publish(hw::Inventory inventory);

 private:
  std::mutex mu_;
  Listener listener_;
  std::optional<hw::Inventory> pending_;
};

// The production source: rescans with hw::Rescanner every `interval`.
class DiscoverySource final : public DeviceSource {
 public:
  DiscoverySource(std::unique_ptr<hw::Discovery> discovery, std::chrono::milliseconds interval);
  ~DiscoverySource() override;
  DiscoverySource(const DiscoverySource&) = delete;
  DiscoverySource& operator=(const DiscoverySource&) = delete;

  Status Start(Listener listener) override;
  void Stop() override;

 private:
  std::unique_ptr<hw::Discovery> discovery_;
  std::chrono::milliseconds interval_;
  std::unique_ptr<hw::Rescanner> rescanner_;
};

}  // namespace hyperaccel::device_plugin
