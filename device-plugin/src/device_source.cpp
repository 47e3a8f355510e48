#include "hyperaccel/device_plugin/device_source.h"

#include <utility>

namespace hyperaccel::device_plugin {

ManualDeviceSource::ManualDeviceSource(hw::Inventory initial) : pending_(std::move(initial)) {}

Status ManualDeviceSource::Start(Listener listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
  if (pending_) {
    listener_(*pending_);
    pending_.reset();
  }
  return Status::Ok();
}

void ManualDeviceSource::Stop() {
  std::lock_guard lock(mu_);
  listener_ = nullptr;
}

void ManualDeviceSource::Publish(hw::Inventory inventory) {
  std::lock_guard lock(mu_);
  if (listener_) {
    listener_(inventory);
  } else {
    pending_ = std::move(inventory);
  }
}

}  // namespace hyperaccel::device_plugin
