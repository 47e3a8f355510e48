// The device health the kubelet streams (NodeWatchResources), from the daemon's inventories.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "hyperaccel/dra_driver/node_service.h"
#include "hyperaccel/dra_driver/slices.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::dra {

// A HealthSource fed with every new inventory. Lists every card and arc device of the pool (the
// names PoolDevices gives for `options`); a device is healthy iff all its cards are present and
// healthy, and its message is the card's reason ("card-3: <reason>" for an arc). Before the first
// inventory the list is empty (generation 0). The generation grows only when a device appears,
// disappears or changes health or message; a device's last_updated is when its status last
// changed.
class InventoryHealthSource : public HealthSource {
 public:
  using Clock = std::function<int64_t()>;  // unix seconds
  explicit InventoryHealthSource(SliceOptions options, Clock now = nullptr);

  // Takes in a new inventory; wakes WaitForChange when something changed. A graph the placement
  // library rejects lists the cards only.
  void SetInventory(const hw::Inventory& inventory);
  // Takes in new slice options (the publisher's, once the server's features are known) and lists
  // the devices of the last inventory again with them. Does nothing when they are unchanged.
  void SetOptions(const SliceOptions& options);

  std::vector<DeviceHealth> Snapshot(uint64_t* generation) override;
  uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) override;

 private:
  // Lists the devices of inventory_ for options_. Called with update_mu_ held.
  void Update();

  Clock now_;
  // Held for a whole update, so that a slower update never overwrites a newer one.
  std::mutex update_mu_;
  SliceOptions options_;                    // guarded by update_mu_
  std::optional<hw::Inventory> inventory_;  // the last one; guarded by update_mu_
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<DeviceHealth> devices_;
  uint64_t generation_ = 0;
};

}  // namespace hyperaccel::dra
