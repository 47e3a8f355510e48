// The XRT edge: everything we ask libxrt_coreutil (and nothing else of XRT). Every XRT exception
// is caught here and becomes a value. An interface, so discovery can be tested without XRT.
#pragma once

#include <chrono>
#include <memory>
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
  // Probes several cards in one go (one result per BDF, in order); what a scan calls. The default
  // asks ProbeCard for each.
  virtual std::vector<Result<XrtCardInfo>> ProbeCards(const std::vector<std::string>& bdfs) {
    std::vector<Result<XrtCardInfo>> out;
    out.reserve(bdfs.size());
    for (const std::string& bdf : bdfs) out.push_back(ProbeCard(bdf));
    return out;
  }
  // Software emulation: opens every emulated device (kept open for the probe's lifetime, as XRT's
  // emulation caches per device object) and returns them in index order.
  virtual Result<std::vector<XrtCardInfo>> OpenEmulated() = 0;
};

// How long one run of the XRT probe helper may take before it is killed.
inline constexpr std::chrono::milliseconds kDefaultXrtProbeTimeout{5000};
inline constexpr const char* kXrtProbeHelper = "hyperaccel-xrt-probe";

// Where the XRT probe helper is: $HYPERACCEL_XRT_PROBE alone when set (an operator's explicit
// choice), else the first executable of: the binary's directory, <binary dir>/../lib/hyperaccel/
// (the image's layout), the build tree. Read once per process. NOT_FOUND names what was tried.
Result<std::string> FindXrtHelper();

// The real probe: XRT runs in the helper executable hyperaccel-xrt-probe (one short-lived process
// per request: Facts, one per ProbeCards batch, OpenEmulated), never in this process. Each run is
// killed after `timeout`. Every failure of the helper (missing, killed, crashed, non-zero exit,
// malformed answer) becomes a Status with the reason, or for Facts xrt_available = false with the
// reason in xrt_detail; discovery then works from sysfs alone.
std::shared_ptr<XrtProbe> MakeLibXrtProbe(std::chrono::milliseconds timeout = kDefaultXrtProbeTimeout);
// The same over an explicit helper path (tests, tools).
std::shared_ptr<XrtProbe> MakeXrtHelperProbe(std::string helper_path,
                                             std::chrono::milliseconds timeout = kDefaultXrtProbeTimeout);

// Makes XRT usable by the helper (which inherits this process's environment) before its first run:
//  - emulation (`emulated_cards` > 0): writes emconfig.json with that many U55C devices into
//    `work_dir` (a private temp dir when empty), sets EMCONFIG_PATH and XCL_EMULATION_MODE=sw_emu;
//  - both modes: when XILINX_XRT is unset, points it at a directory whose lib/ is the directory
//    that holds libxrt_coreutil (Debian's multiarch layout, which XRT's shim loader cannot find
//    on its own; the helper's `lib-dir` answer says where it is), or at /opt/xilinx/xrt when AMD's
//    packages are installed.
// Returns the directory used. Process-wide: call once, from main, before any thread starts.
Result<std::string> PrepareXrtEnvironment(int emulated_cards, const std::string& work_dir = "",
                                          std::chrono::milliseconds timeout = kDefaultXrtProbeTimeout);

// Whether an OpenCL platform from Xilinx/AMD is visible through the ICD loader (node fact).
struct OpenClFacts {
  bool xilinx = false;
  std::string detail;  // the platforms seen, or why none
};
// Asked of the helper (one run); when it fails, xilinx = false and detail says why.
OpenClFacts ProbeOpenCl(std::chrono::milliseconds timeout = kDefaultXrtProbeTimeout);

// Parses XRT's thermal and electrical JSON reports into Sensors (only entries marked present).
// Pure; used by the helper, exposed for tests.
Sensors ParseXrtSensors(const std::string& thermal_json, const std::string& electrical_json);

}  // namespace hyperaccel::hw
