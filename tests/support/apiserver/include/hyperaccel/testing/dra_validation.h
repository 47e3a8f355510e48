// Validation of resource.k8s.io/v1 objects as kube-apiserver does it (the subset the project's
// DRA driver can produce, plus the limits of the reference). Returns "" when valid, else the first
// field error in the API server's wording ("spec.devices[3].name: Invalid value: ...").
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hyperaccel::testing {

struct DraGates {
  int minor = 35;  // Kubernetes 1.<minor>: 34 = counters with devices, >= 35 = in separate slices
  bool partitionable = true;
  bool device_taints = true;
};

// Drops the fields of gated features that are off (what the real server does on write).
void DropDisabledDraFields(nlohmann::json& slice, const DraGates& gates);

std::string ValidateResourceSlice(const nlohmann::json& slice, const DraGates& gates);
// Fields that may not change on update (driver, pool.name, nodeName).
std::string ValidateResourceSliceUpdate(const nlohmann::json& updated, const nlohmann::json& old);
std::string ValidateDeviceClass(const nlohmann::json& dc);
std::string ValidateResourceClaim(const nlohmann::json& claim);

// What the scheduler's allocator checks across the slices of one pool before it uses it: all
// slices at one generation, resourceSliceCount equal to the number of slices, counter-set names
// unique in the pool, every consumed counter set and counter defined in the pool (1.34: in the
// same slice). "" when the pool is complete and consistent.
std::string ValidatePool(const std::vector<nlohmann::json>& slices);

}  // namespace hyperaccel::testing
