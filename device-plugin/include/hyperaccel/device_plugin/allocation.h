// What a container gets for a set of cards (Allocate), which cards to prefer
// (GetPreferredAllocation), and the CDI spec that describes every card. Pure logic except the
// CDI file writer.
#pragma once

#include <map>
#include <span>
#include <string>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/device_plugin/resources.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::device_plugin {

// Environment variables given to containers (ARCHITECTURE.md §2).
inline constexpr const char* kEnvVisibleDevices = "HYPERACCEL_VISIBLE_DEVICES";
inline constexpr const char* kEnvDeviceSerials = "HYPERACCEL_DEVICE_SERIALS";
inline constexpr const char* kEnvRingOrder = "HYPERACCEL_RING_ORDER";
inline constexpr const char* kEnvXilinxXrt = "XILINX_XRT";

struct AllocateOptions {
  bool expose_mgmt = false;  // also hand out the management node (it can reflash the card)
  bool mount_xrt = false;    // bind the host XRT directory read-only and set XILINX_XRT
  std::string xrt_host_dir = "/opt/xilinx/xrt";
  std::string xrt_container_dir = "/opt/xilinx/xrt";
  bool mount_icd = false;  // bind the OpenCL ICD file read-only
  std::string icd_file = "/etc/OpenCL/vendors/xilinx.icd";
  bool cdi = false;  // write a CDI spec and return cdi_devices
  std::string cdi_dir = "/var/run/cdi";
  std::string cdi_kind = "hyperaccel.ai/fpga";  // "<vendor>/<class>"
};

// The answer for one container, independent of the wire format.
struct ContainerAllocation {
  struct Mount {
    std::string container_path;
    std::string host_path;
    bool read_only = true;
    friend bool operator==(const Mount&, const Mount&) = default;
  };
  struct DeviceNode {
    std::string container_path;
    std::string host_path;
    std::string permissions;  // "rw"
    friend bool operator==(const DeviceNode&, const DeviceNode&) = default;
  };
  std::map<std::string, std::string> envs;
  std::vector<Mount> mounts;
  std::vector<DeviceNode> devices;
  std::vector<std::string> cdi_devices;  // fully qualified CDI names
  friend bool operator==(const ContainerAllocation&, const ContainerAllocation&) = default;
};

// Builds the answer for `ids`. Deterministic in the set of IDs (order and duplicates in the
// request do not matter), so a replayed Allocate gets the same answer. Errors: no IDs, an
// unknown ID, an unhealthy ID (with the reason), a card without render node, a card missing
// from the CDI spec.
Result<ContainerAllocation> BuildAllocation(const ResourceView& view, std::span<const std::string> ids,
                                            const AllocateOptions& options);

// GetPreferredAllocation for one container: exactly `size` IDs from `available` including every
// `must_include` ID, chosen by placement (linked, ring-contiguous, NUMA-local, least fragmenting).
// When placement cannot answer (unknown or unhealthy IDs in the request, more than 64 cards) it
// falls back to must_include followed by available in the kubelet's order, and says so in
// `*fallback_reason`. Errors (InvalidArgument, which fails the kubelet's admission with that
// message) when a must-include ID is not in `available` (the kubelet always lists them there) or
// there are more must-include IDs than `size`; ResourceExhausted when fewer than `size` IDs are
// available at all.
Result<std::vector<std::string>> PreferredAllocation(const ResourceView& view,
                                                     std::span<const std::string> available,
                                                     std::span<const std::string> must_include, int size,
                                                     std::string* fallback_reason = nullptr);

// "hyperaccel.ai/fpga=0000:3b:00.1"
std::string CdiDeviceName(const std::string& kind, const std::string& id);
// <cdi_dir>/<vendor>-<class>.json
std::string CdiSpecPath(const AllocateOptions& options);
// The CDI spec (JSON, cdiVersion 0.5.0) with one device per card: its render node (plus the
// management node with expose_mgmt), and shared edits for the XRT/ICD mounts and XILINX_XRT.
std::string RenderCdiSpec(const std::vector<hw::Card>& cards, const AllocateOptions& options);
// Writes `content` to `path` through a temporary file and rename, so readers never see half a file.
Status WriteFileAtomic(const std::string& path, const std::string& content);

}  // namespace hyperaccel::device_plugin
