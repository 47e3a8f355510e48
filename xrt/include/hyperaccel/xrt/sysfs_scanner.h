// Card discovery from Linux sysfs, without XRT: the PCI functions bound to `xocl` (user PF) and
// `xclmgmt` (mgmt PF), paired per card, with identity, location, health and sensors.
//
// The sysfs root is injectable ("/sys" in production, a fake tree in tests). Nothing here throws
// or crashes on odd layouts: missing, garbage or truncated files become warnings or a per-card
// `health_reason`. The temperature limit is not applied here (see health.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::hw {

struct SysfsScan {
  std::vector<Card> cards;            // sorted by id; ids are lower-case user-PF addresses
  std::vector<std::string> warnings;  // "card 0000:3b:00.1: numa_node: not a number: \"abc\""
};

// Scans `root` (normally "/sys") for Alveo cards. A card is reported when its user PF is bound to
// xocl, or its mgmt PF to xclmgmt (then unhealthy: without the user PF no container can use it;
// its id is the user-PF address the card would have, function 1). Functions whose vendor is not
// one of 0x10ee, 0x13fe, 0x1d0f, 0x3475 are skipped with a warning.
//
// health_reason (when unhealthy) lists every problem found, "; "-separated, without the card id:
// "not ready; rom.*/VBNV missing (shell not flashed?)".
SysfsScan ScanSysfs(const std::string& root = "/sys");

// Reads the card whose user PF is `bdf` ("0000:3b:00.1", any case), paired with its mgmt PF when
// one is bound to xclmgmt. Errors: InvalidArgument (malformed bdf), NotFound (no such function),
// FailedPrecondition (vendor is not an Alveo vendor). File-level problems go to `warnings`
// (may be null) and to the card's health.
Result<Card> ReadUserPf(const std::string& root, const std::string& bdf,
                        std::vector<std::string>* warnings = nullptr);

// "ALVEO-U55C" for the U55C user (0x505d) or mgmt (0x505c) device id of vendor 0x10ee;
// "UNKNOWN" otherwise.
std::string_view ProductName(uint16_t vendor_id, uint16_t device_id);

// Number of QSFP28 cages of a product (U55C: 2); 0 when unknown or none.
int QsfpCageCount(uint16_t vendor_id, uint16_t device_id);

}  // namespace hyperaccel::hw
