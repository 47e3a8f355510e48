// hyperaccel-xrt-probe: everything this project asks libxrt_coreutil and the OpenCL ICD loader,
// in a helper executable that answers one request per run and exits. The daemons run it (through
// xrt_probe.cpp) instead of loading XRT themselves, so that XRT, its Boost and shim dependencies
// and the C++ runtime they need never enter a daemon's process. Every XRT exception is caught
// here and becomes a value. The answers and their JSON are described in xrt_wire.h.
//
//   hyperaccel-xrt-probe lib-dir | facts | emulated | opencl | cards BDF...
//
// stdout carries exactly one JSON document: XRT prints warnings on stdout (emulation's "CRITICAL
// WARNING" when emconfig.json is missing), so fd 1 is pointed at stderr before XRT is touched and
// the answer goes to a private copy of the original stdout. Failure: reason on stderr, exit 1;
// usage error: exit 2.

// Only OpenCL 1.0 calls are made (clGetPlatformIDs, clGetPlatformInfo); saying which version the
// code targets also keeps cl_version.h from printing its default on every build.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>
#include <xrt/xrt_device.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>

#include "experimental/xrt_error.h"
#include "experimental/xrt_system.h"
#include "hyperaccel/xrt/xrt_probe.h"
#include "xrt_wire.h"

namespace hyperaccel::hw {
namespace fs = std::filesystem;
namespace {

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string NormalizeUuid(std::string uuid) {
  uuid = Lower(std::move(uuid));
  if (uuid.find_first_not_of("0-") == std::string::npos) return "";
  return uuid;
}

// Directory that holds libxrt_coreutil.so (where the shims live too).
std::string CoreutilDir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&xrtDeviceOpen), &info) != 0 && info.dli_fname != nullptr) {
    std::error_code ec;
    fs::path p = fs::canonical(info.dli_fname, ec);
    if (!ec) return p.parent_path().string();
  }
  return "/usr/lib/x86_64-linux-gnu";
}

// -1 when no emulation shim can be loaded.
int EmulatedDeviceCountImpl() {
  for (const char* shim : {"libxrt_swemu.so.2", "libxrt_hwemu.so.2"}) {
    void* h = dlopen(shim, RTLD_NOW | RTLD_NOLOAD);
    if (h == nullptr && std::string(shim) == "libxrt_swemu.so.2") {
      // Not loaded yet: load it ourselves (same soname as coreutil will use; one copy).
      h = dlopen((CoreutilDir() + "/" + shim).c_str(), RTLD_NOW | RTLD_GLOBAL);
    }
    if (h == nullptr) continue;
    using ProbeFn = unsigned (*)();
    auto fn = reinterpret_cast<ProbeFn>(dlsym(h, "xclProbe"));
    if (fn != nullptr) return static_cast<int>(fn());
  }
  return -1;
}

class LibXrtProbe : public XrtProbe {
 public:
  NodeFacts Facts() override {
    NodeFacts f;
    const char* mode = std::getenv("XCL_EMULATION_MODE");  // NOLINT(concurrency-mt-unsafe)
    f.emulation = mode != nullptr && *mode != '\0';
    try {
      std::string host;
      if (f.emulation) {
        // Under emulation the host report comes from an opened device.
        std::lock_guard<std::mutex> lock(mu_);
        if (devices_.empty()) devices_.emplace_back(0U);
        host = devices_.front().get_info<xrt::info::device::host>();
      } else {
        // Hardware mode: loading the shim and enumerating tells whether the driver is there.
        size_t n = xrt::system::enumerate_devices();
        std::error_code ec;
        if (n == 0 && !fs::exists("/sys/bus/pci/drivers/xocl", ec)) {
          f.xrt_available = false;
          f.xrt_detail = "XRT loaded but the xocl driver is not (no /sys/bus/pci/drivers/xocl)";
          return f;
        }
        f.xrt_detail = "driver xocl; " + std::to_string(n) + " ready device(s)";
        if (n > 0) host = xrt::device(0U).get_info<xrt::info::device::host>();
      }
      f.xrt_available = true;
      if (!host.empty()) {
        auto j = nlohmann::json::parse(host, nullptr, false);
        if (j.is_object() && j.contains("version") && j["version"].is_string()) f.xrt_version = j["version"];
      }
      if (f.emulation) f.xrt_detail = std::string("software emulation (") + mode + ")";
    } catch (const std::exception& e) {
      f.xrt_available = false;
      f.xrt_detail = e.what();
    }
    if (f.xrt_version.empty() && f.xrt_available) f.xrt_version = XrtLibraryVersion();
    return f;
  }

  Result<XrtCardInfo> ProbeCard(const std::string& bdf) override {
    XrtCardInfo info;
    try {
      xrt::device dev(Lower(bdf));
      info.bdf = dev.get_info<xrt::info::device::bdf>();
      info.name = dev.get_info<xrt::info::device::name>();
      FillCommon(dev, info);
      try {
        auto platform = nlohmann::json::parse(dev.get_info<xrt::info::device::platform>(), nullptr, false);
        if (platform.is_object() && platform.contains("platforms") && platform["platforms"].is_array() &&
            !platform["platforms"].empty()) {
          const auto& p = platform["platforms"][0];
          auto ctrl = p.value("/controller/card_mgmt_controller/serial_number"_json_pointer, std::string());
          info.serial = ctrl;
        }
      } catch (const std::exception&) {
        // platform throws on some shells and under emulation; serial then comes from sysfs.
      }
      try {
        xrt::error err(dev, XRT_ERROR_CLASS_HARDWARE);
        if (err.get_error_code() != 0) info.last_error = err.to_string();
      } catch (const std::exception&) {
        // No error log on this driver (or emulation): nothing to report.
      }
    } catch (const std::exception& e) {
      return Unavailable("card " + bdf + ": XRT cannot open it: " + e.what());
    }
    return info;
  }

  Result<std::vector<XrtCardInfo>> OpenEmulated() override {
    const int count = EmulatedDeviceCountImpl();
    if (count < 0) return Unavailable("XRT software emulation shim not loadable (is libxrt1 installed?)");
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<XrtCardInfo> out;
    try {
      // Keep every device object alive: emulation caches name/bdf per device object.
      while (devices_.size() < static_cast<size_t>(count))
        devices_.emplace_back(static_cast<unsigned>(devices_.size()));
      for (int i = 0; i < count; ++i) {
        auto& dev = devices_[static_cast<size_t>(i)];
        XrtCardInfo info;
        info.bdf = dev.get_info<xrt::info::device::bdf>();
        info.name = dev.get_info<xrt::info::device::name>();
        FillCommon(dev, info);
        out.push_back(std::move(info));
      }
    } catch (const std::exception& e) {
      return Unavailable(std::string("XRT emulation: ") + e.what());
    }
    return out;
  }

 private:
  static void FillCommon(const xrt::device& dev, XrtCardInfo& info) {
    try {
      info.xclbin_uuid = NormalizeUuid(dev.get_xclbin_uuid().to_string());
    } catch (const std::exception&) {
    }
    std::string thermal;
    std::string electrical;
    try {
      thermal = dev.get_info<xrt::info::device::thermal>();
    } catch (const std::exception&) {
    }
    try {
      electrical = dev.get_info<xrt::info::device::electrical>();
    } catch (const std::exception&) {
    }
    info.sensors = ParseXrtSensors(thermal, electrical);
  }

  static std::string XrtLibraryVersion() {
    // The version of the library we linked, from its soname (libxrt_coreutil.so.2.13.0).
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(CoreutilDir(), ec)) {
      std::string name = e.path().filename().string();
      const std::string prefix = "libxrt_coreutil.so.";
      if (name.rfind(prefix, 0) == 0 && std::count(name.begin(), name.end(), '.') >= 4) {
        return name.substr(prefix.size());
      }
    }
    return "";
  }

  std::mutex mu_;
  std::vector<xrt::device> devices_;  // emulated devices, kept open
};

OpenClFacts ProbeOpenClImpl() {
  OpenClFacts f;
  cl_uint n = 0;
  cl_int rc = clGetPlatformIDs(0, nullptr, &n);
  if (rc != CL_SUCCESS || n == 0) {
    f.detail = rc == -1001 ? "no OpenCL platform installed (no ICD in /etc/OpenCL/vendors)"
                           : "clGetPlatformIDs failed (" + std::to_string(rc) + ")";
    return f;
  }
  std::vector<cl_platform_id> ids(n);
  if (clGetPlatformIDs(n, ids.data(), nullptr) != CL_SUCCESS) {
    f.detail = "clGetPlatformIDs failed";
    return f;
  }
  std::string seen;
  for (auto id : ids) {
    char vendor[256] = {0};
    char name[256] = {0};
    clGetPlatformInfo(id, CL_PLATFORM_VENDOR, sizeof vendor - 1, vendor, nullptr);
    clGetPlatformInfo(id, CL_PLATFORM_NAME, sizeof name - 1, name, nullptr);
    std::string v = Lower(vendor);
    if (v.find("xilinx") != std::string::npos || v.find("amd") != std::string::npos) {
      if (Lower(name).find("xilinx") != std::string::npos || v.find("xilinx") != std::string::npos)
        f.xilinx = true;
    }
    if (!seen.empty()) seen += ", ";
    seen += std::string(name) + " (" + vendor + ")";
  }
  f.detail = "platforms: " + seen;
  return f;
}

}  // namespace
}  // namespace hyperaccel::hw

namespace {

using hyperaccel::hw::XrtCardInfo;
namespace wire = hyperaccel::hw::wire;

// The original stdout, where the one answer goes (fd 1 itself then points at stderr).
int g_answer_fd = -1;

int Fail(const std::string& why) {
  std::fprintf(stderr, "hyperaccel-xrt-probe: %s\n", why.c_str());
  return 1;
}

int Usage(const std::string& why) {
  std::fprintf(stderr,
               "hyperaccel-xrt-probe: %s\n"
               "usage: hyperaccel-xrt-probe lib-dir | facts | emulated | opencl | cards BDF...\n",
               why.c_str());
  return 2;
}

int Answer(const nlohmann::json& j) {
  const std::string text = j.dump() + "\n";
  std::string_view left = text;
  while (!left.empty()) {
    const ssize_t n = ::write(g_answer_fd, left.data(), left.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail("cannot write the answer: " + hyperaccel::ErrnoMessage(errno));
    left.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

int Run(const std::vector<std::string>& args) {
  if (args.empty()) return Usage("no request");
  const std::string& request = args[0];
  if (request != "cards" && args.size() > 1) return Usage("request \"" + request + "\" takes no arguments");
  if (request == "lib-dir") {
    return Answer({{"v", wire::kXrtHelperProtocol}, {"coreutil_dir", hyperaccel::hw::CoreutilDir()}});
  }
  if (request == "facts") return Answer(wire::FactsToJson(hyperaccel::hw::LibXrtProbe().Facts()));
  if (request == "opencl") return Answer(wire::OpenClToJson(hyperaccel::hw::ProbeOpenClImpl()));
  if (request == "emulated") {
    hyperaccel::hw::LibXrtProbe probe;
    auto devices = probe.OpenEmulated();
    if (!devices.ok()) return Fail(devices.status().message());
    nlohmann::json list = nlohmann::json::array();
    for (const XrtCardInfo& d : *devices) list.push_back(wire::CardToJson(d));
    return Answer({{"v", wire::kXrtHelperProtocol}, {"devices", std::move(list)}});
  }
  if (request == "cards") {
    hyperaccel::hw::LibXrtProbe probe;
    nlohmann::json list = nlohmann::json::array();
    for (size_t i = 1; i < args.size(); ++i) {
      auto info = probe.ProbeCard(args[i]);
      if (info.ok()) {
        list.push_back({{"bdf", args[i]}, {"info", wire::CardToJson(*info)}});
      } else {
        // The reader names the card itself.
        std::string why = info.status().message();
        const std::string prefix = "card " + args[i] + ": ";
        if (why.rfind(prefix, 0) == 0) why.erase(0, prefix.size());
        list.push_back({{"bdf", args[i]}, {"error", why}});
      }
    }
    return Answer({{"v", wire::kXrtHelperProtocol}, {"cards", std::move(list)}});
  }
  return Usage("unknown request \"" + request + "\"");
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// XRT and the OpenCL loader leave allocations behind at exit, which LeakSanitizer would turn into a
// failed run of every request in sanitizer builds. Leaks in our own code are still reported.
extern "C" const char* __lsan_default_suppressions() {  // NOLINT(bugprone-reserved-identifier)
  return "leak:libxrt_coreutil\nleak:libxrt_swemu\nleak:libxrt_core\nleak:libOpenCL\n";
}
#endif

int main(int argc, char** argv) {
  // Keep stdout for the answer; whatever XRT prints goes to stderr.
  g_answer_fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (g_answer_fd < 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    return Fail("cannot set up stdout: " + hyperaccel::ErrnoMessage(errno));
  }
  std::vector<std::string> args(argv + 1,
                                argv + argc);  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
  try {
    return Run(args);
  } catch (const std::exception& e) {
    return Fail(std::string("unexpected error: ") + e.what());
  } catch (...) {
    return Fail("unexpected error");
  }
}
