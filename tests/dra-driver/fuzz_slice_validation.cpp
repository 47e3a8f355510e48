// Fuzzes the parsing this issue added: ResourceSlice/Claim/DeviceClass validation (the emulator's,
// which the tests trust), the pool check, /version parsing and claim allocation results. None
// may crash or hang on any input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hyperaccel/kube/resource.h"
#include "hyperaccel/testing/dra_validation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)hyperaccel::kube::ParseServerVersion(text);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return 0;
  if (!j.contains("metadata") || !j["metadata"].is_object()) j["metadata"] = nlohmann::json::object();
  hyperaccel::testing::DraGates gates;
  for (int minor : {34, 35}) {
    gates.minor = minor;
    (void)hyperaccel::testing::ValidateResourceSlice(j, gates);
  }
  hyperaccel::testing::DropDisabledDraFields(j, {35, false, false});
  (void)hyperaccel::testing::ValidateDeviceClass(j);
  (void)hyperaccel::testing::ValidateResourceClaim(j);
  (void)hyperaccel::kube::AllocatedDevices(j);
  return 0;
}
