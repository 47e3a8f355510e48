// Typed helpers for the Kubernetes APIs beyond the plain verbs: server-version discovery
// (/version) and the paths and list helpers of resource.k8s.io/v1 (ResourceSlice, ResourceClaim,
// DeviceClass). Objects stay JSON (the client's Json): the DRA driver builds and compares them
// itself, and keeping them as JSON means fields this code does not know survive a read-modify-write.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/kube/client.h"

namespace hyperaccel::kube {

// The API server's version as /version reports it.
struct ServerVersion {
  int major = 0;
  int minor = 0;
  std::string git_version;  // "v1.35.1"

  // True when the server is at least major.minor.
  bool AtLeast(int want_major, int want_minor) const {
    return major > want_major || (major == want_major && minor >= want_minor);
  }
  std::string ToString() const;  // "1.35 (v1.35.1)"
};

// Parses a /version body ({"major":"1","minor":"35+","gitVersion":"v1.35.1-gke.3",...}). Vendor
// suffixes on minor ("35+") are ignored; when major/minor are missing or empty the numbers are
// taken from gitVersion. Errors name the offending field.
Result<ServerVersion> ParseServerVersion(std::string_view body);

// GET /version.
Result<ServerVersion> DiscoverServerVersion(Client& client);

// resource.k8s.io/v1 collection and object paths.
inline constexpr std::string_view kResourceApiVersion = "resource.k8s.io/v1";
std::string ResourceSlicesPath();
std::string ResourceSlicePath(std::string_view name);
std::string DeviceClassesPath();
std::string DeviceClassPath(std::string_view name);
std::string ResourceClaimsPath(std::string_view ns);
std::string ResourceClaimPath(std::string_view ns, std::string_view name);
std::string ResourceClaimStatusPath(std::string_view ns, std::string_view name);

// "spec.nodeName=n1,spec.driver=fpga.hyperaccel.ai" (empty parts are left out), ready for
// ?fieldSelector= after QueryEscape.
std::string SliceFieldSelector(std::string_view node_name, std::string_view driver);

// Appends ?fieldSelector=... to a collection path (no-op for an empty selector).
std::string WithFieldSelector(std::string path, std::string_view field_selector);

// Lists the ResourceSlices of one driver on one node (field selectors spec.nodeName and
// spec.driver, as the kubelet uses them). Returns the List object (items + resourceVersion).
Result<Json> ListNodeResourceSlices(Client& client, std::string_view node_name, std::string_view driver);

// The allocation result of a claim: which devices of which driver/pool were allocated.
struct AllocatedDevice {
  std::string request;
  std::string driver;
  std::string pool;
  std::string device;
};

// Reads status.allocation.devices.results of a ResourceClaim. An unallocated claim gives an empty
// list; malformed results are an error naming the field.
Result<std::vector<AllocatedDevice>> AllocatedDevices(const Json& claim);

}  // namespace hyperaccel::kube
