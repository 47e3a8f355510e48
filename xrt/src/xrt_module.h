// The interface between hyperaccel::xrt and libhyperaccel_xrt_probe.so (xrt_module.cpp), the
// module that links libxrt_coreutil and the OpenCL ICD loader. Both sides are built from this tree
// by the same compiler, so C++ types cross it; kXrtModuleAbi guards against a stale module.
#pragma once

#include <string>

#include "hyperaccel/xrt/xrt_probe.h"

namespace hyperaccel::hw {

inline constexpr int kXrtModuleAbi = 1;
inline constexpr const char* kXrtModuleFile = "libhyperaccel_xrt_probe.so";
inline constexpr const char* kXrtModuleEntry = "hyperaccel_xrt_module_v1";

struct XrtModuleApi {
  int abi;                         // kXrtModuleAbi of the module
  XrtProbe* (*make_probe)();       // a new probe over libxrt_coreutil; the caller owns it
  int (*emulated_device_count)();  // devices of the emulation shim, -1 when none is loadable
  OpenClFacts (*probe_opencl)();   // Xilinx/AMD platforms seen by the ICD loader
  std::string (*coreutil_dir)();   // directory holding libxrt_coreutil.so (and the shims)
};

}  // namespace hyperaccel::hw

extern "C" const hyperaccel::hw::XrtModuleApi* hyperaccel_xrt_module_v1();
