#include "hyperaccel/dra_driver/health_source.h"

#include <chrono>
#include <map>

#include "hyperaccel/common/log.h"

namespace hyperaccel::dra {
namespace {

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The status of a device from its cards: the first card that is not healthy decides.
void Judge(const hw::Inventory& inv, const PoolDevice& d, DeviceHealth* out) {
  out->status = DeviceHealthStatus::kHealthy;
  out->message.clear();
  for (size_t i = 0; i < d.card_ids.size(); ++i) {
    const hw::Card* c = inv.FindById(d.card_ids[i]);
    std::string why;
    if (c == nullptr) {
      why = "card " + d.card_ids[i] + " is missing";
    } else if (c->health != hw::Health::kHealthy) {
      why = c->health_reason.empty() ? std::string("unhealthy") : c->health_reason;
    } else {
      continue;
    }
    out->status = DeviceHealthStatus::kUnhealthy;
    out->message = d.arc ? CardDeviceName(d.cards[i]) + ": " + why : why;
    return;
  }
}

}  // namespace

InventoryHealthSource::InventoryHealthSource(SliceOptions options, Clock now)
    : now_(now ? std::move(now) : Clock(UnixNow)), options_(std::move(options)) {}

void InventoryHealthSource::SetOptions(const SliceOptions& options) {
  std::lock_guard<std::mutex> update(update_mu_);
  if (options == options_) return;
  options_ = options;
  if (inventory_) Update();
}

void InventoryHealthSource::SetInventory(const hw::Inventory& inventory) {
  std::lock_guard<std::mutex> update(update_mu_);
  inventory_ = inventory;
  Update();
}

void InventoryHealthSource::Update() {
  const hw::Inventory& inventory = *inventory_;
  const SliceOptions& options = options_;
  std::vector<PoolDevice> pool;
  if (auto devices = PoolDevices(inventory, options); devices.ok()) {
    pool = std::move(devices).value();
  } else {
    HA_LOG(kWarn, "health: cannot list arcs; reporting cards only").kv("error", devices.status().message());
    for (size_t i = 0; i < inventory.cards.size(); ++i) {
      const int c = static_cast<int>(i);
      pool.push_back({CardDeviceName(c), false, {c}, {inventory.cards[i].id}});
    }
  }
  const int64_t now = now_();
  std::lock_guard<std::mutex> lk(mu_);
  std::map<std::string, const DeviceHealth*> old;
  for (const auto& d : devices_) old[d.device_name] = &d;
  std::vector<DeviceHealth> next;
  bool changed = pool.size() != devices_.size();
  for (const auto& d : pool) {
    DeviceHealth h;
    h.pool_name = options.node_name;
    h.device_name = d.name;
    Judge(inventory, d, &h);
    auto it = old.find(d.name);
    if (it != old.end() && it->second->status == h.status && it->second->message == h.message) {
      h.last_updated_unix = it->second->last_updated_unix;
    } else {
      h.last_updated_unix = now;
      changed = true;
    }
    next.push_back(std::move(h));
  }
  if (!changed) return;
  devices_ = std::move(next);
  ++generation_;
  cv_.notify_all();
}

std::vector<DeviceHealth> InventoryHealthSource::Snapshot(uint64_t* generation) {
  std::lock_guard<std::mutex> lk(mu_);
  if (generation) *generation = generation_;
  return devices_;
}

uint64_t InventoryHealthSource::WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return generation_ != seen; });
  return generation_;
}

}  // namespace hyperaccel::dra
