#include "hyperaccel/xrt/model.h"

#include <algorithm>

namespace hyperaccel::hw {

const char* HealthName(Health h) { return h == Health::kHealthy ? "healthy" : "unhealthy"; }

const char* LinkStateName(LinkState s) {
  switch (s) {
    case LinkState::kUp: return "up";
    case LinkState::kDown: return "down";
    case LinkState::kMismatch: return "mismatch";
    case LinkState::kUnknown: return "unknown";
  }
  return "unknown";
}

const Card* Inventory::FindById(const std::string& id) const {
  for (const auto& c : cards) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

const Card* Inventory::FindBySerial(const std::string& serial) const {
  if (serial.empty()) return nullptr;
  for (const auto& c : cards) {
    if (c.serial == serial) return &c;
  }
  return nullptr;
}

size_t Inventory::HealthyCount() const {
  return static_cast<size_t>(
      std::count_if(cards.begin(), cards.end(), [](const Card& c) { return c.health == Health::kHealthy; }));
}

}  // namespace hyperaccel::hw
