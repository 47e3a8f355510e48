// Kept apart from device_source.cpp: only binaries that really discover hardware link hw::Discovery.
#include "hyperaccel/device_plugin/device_source.h"
#include "hyperaccel/xrt/discovery.h"

namespace hyperaccel::device_plugin {

DiscoverySource::DiscoverySource(std::unique_ptr<hw::Discovery> discovery, std::chrono::milliseconds interval)
    : discovery_(std::move(discovery)), interval_(interval) {}

DiscoverySource::~DiscoverySource() { Stop(); }

Status DiscoverySource::Start(Listener listener) {
  if (!discovery_) return FailedPrecondition("device source: no discovery");
  if (rescanner_) return FailedPrecondition("device source: already started");
  rescanner_ = std::make_unique<hw::Rescanner>(discovery_.get(), interval_, std::move(listener));
  rescanner_->Start();
  return Status::Ok();
}

void DiscoverySource::Stop() {
  if (rescanner_) {
    rescanner_->Stop();
    rescanner_.reset();
  }
}

}  // namespace hyperaccel::device_plugin
