// The XRT edge: everything we ask libxrt_coreutil (and nothing else of XRT). Every XRT exception
// is caught here and becomes a value. An interface, so discovery can be tested without XRT.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::hw {

// What XRT reports about one card.
struct XrtCardInfo {
  std::string bdf;          // as XRT reports it (lower case)
  std::string name;         // VBNV (real cards: base shell; emulation: full platform name)
  std::string serial;       // platform.controller.card_mgmt_controller.serial_number, when present
  std::string xclbin_uuid;  // lower case; empty when the all-zero uuid is reported
  Sensors sensors;          // from the thermal and electrical reports (only present values)
  std::string last_error;   // last hardware-class error, empty when none or not readable
};

class XrtProbe {
 public:
  virtual ~XrtProbe() = default;
  // Whether XRT could be loaded and which version/shim; never throws, never fails.
  virtual NodeFacts Facts() = 0;
  // Probes one ready user PF by its lower-case PCI address.
  virtual Result<XrtCardInfo> ProbeCard(const std::string& bdf) = 0;
  // Software emulation: opens every emulated device (kept open for the probe's lifetime, as XRT's
  // emulation caches per device object) and returns them in index order.
  virtual Result<std::vector<XrtCardInfo>> OpenEmulated() = 0;
};

// The real probe over libxrt_coreutil. libxrt_coreutil is not linked into the binaries: the first
// call loads the module libhyperaccel_xrt_probe.so (which links it) from $HYPERACCEL_XRT_MODULE
// when set, else the first of: the binary's directory, <binary dir>/../lib/hyperaccel/, the build
// tree, the dynamic loader's path. When it cannot be loaded the probe reports XRT unavailable (Facts)
// and every call fails with the reason; discovery then works from sysfs alone.
std::shared_ptr<XrtProbe> MakeLibXrtProbe();

// Whether `path` is a loadable XRT probe module of this build (OK), or why not. Loads it.
Status CheckXrtModule(const std::string& path);

// Makes XRT usable in this process before its first call:
//  - emulation (`emulated_cards` > 0): writes emconfig.json with that many U55C devices into
//    `work_dir` (a private temp dir when empty), sets EMCONFIG_PATH and XCL_EMULATION_MODE=sw_emu;
//  - both modes: when XILINX_XRT is unset, points it at a directory whose lib/ is the directory
//    that holds libxrt_coreutil (Debian's multiarch layout, which XRT's shim loader cannot find
//    on its own), or at /opt/xilinx/xrt when AMD's packages are installed.
// Returns the directory used. Process-wide: call once, from main, before any thread starts.
Result<std::string> PrepareXrtEnvironment(int emulated_cards, const std::string& work_dir = "");

// Counts the devices emulation exposes: asks the loaded emulation shim (xclProbe), which is the
// only reliable count (xrt::system::enumerate_devices() returns 0 under emulation).
std::optional<int> EmulatedDeviceCount();

// Whether an OpenCL platform from Xilinx/AMD is visible through the ICD loader (node fact).
struct OpenClFacts {
  bool xilinx = false;
  std::string detail;  // the platforms seen, or why none
};
OpenClFacts ProbeOpenCl();

// Parses XRT's thermal and electrical JSON reports into Sensors (only entries marked present).
// Pure; exposed for tests.
Sensors ParseXrtSensors(const std::string& thermal_json, const std::string& electrical_json);

}  // namespace hyperaccel::hw
