// Decoding of a QSFP/QSFP28 module's SFF-8636 memory map (the image the Alveo CMC exposes as
// `xmc.m.*/qsfpN_diag`). Pure function, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "hyperaccel/common/status.h"

namespace hyperaccel::hw {

// What the agent needs from one QSFP module.
struct QsfpModule {
  uint8_t identifier = 0;  // SFF-8024 identifier (byte 0): 0x0c QSFP, 0x0d QSFP+, 0x11 QSFP28
  bool present = false;    // a QSFP/QSFP+/QSFP28 module answered
  // True when any RX lane reports loss of signal; absent when no module is present or the module
  // says its monitoring data is not ready yet.
  std::optional<bool> loss_of_signal;
  uint8_t rx_los_lanes = 0;  // bit k = RX lane k+1 LOS (lower page byte 3, bits 3..0)
  std::string vendor;        // upper page 0 bytes 148-163, trimmed
  std::string part_number;   // bytes 168-183, trimmed
  std::string serial;        // bytes 196-211, trimmed
};

// Bytes needed: 128-byte lower page 0 followed by 128-byte upper page 0.
inline constexpr size_t kSff8636ImageSize = 256;

// Decodes `image` (lower page 0 at offset 0, upper page 0 at offset 128; longer images with more
// pages are accepted, the extra bytes are ignored).
//   - empty image: nothing was read (the CMC returns nothing when it cannot reach the cage) ->
//     present = false; callers that care must tell this apart from a read "no module";
//   - 1..255 bytes: InvalidArgument (truncated read);
//   - identifier not QSFP/QSFP+/QSFP28: present = false, `identifier` set;
//   - otherwise present, with LOS and the ASCII fields (non-printable bytes become '?').
Result<QsfpModule> ParseSff8636(std::span<const uint8_t> image);

}  // namespace hyperaccel::hw
