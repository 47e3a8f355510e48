#include "hyperaccel/xrt/xrt_probe.h"

#include <CL/cl.h>
#include <dlfcn.h>
#include <unistd.h>
#include <xrt/xrt_device.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "experimental/xrt_error.h"
#include "experimental/xrt_system.h"
#include "hyperaccel/common/log.h"

namespace hyperaccel::hw {
namespace fs = std::filesystem;
namespace {

std::optional<double> ToDouble(const nlohmann::json& j) {
  try {
    if (j.is_number()) return j.get<double>();
    if (j.is_string()) {
      const std::string& s = j.get_ref<const std::string&>();
      size_t used = 0;
      double v = std::stod(s, &used);
      if (used == 0) return std::nullopt;
      return v;
    }
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

bool IsPresent(const nlohmann::json& entry) {
  auto it = entry.find("is_present");
  if (it == entry.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  return it->is_string() && it->get<std::string>() == "true";
}

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
    auto count = EmulatedDeviceCount();
    if (!count) return Unavailable("XRT software emulation shim not loadable (is libxrt1 installed?)");
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<XrtCardInfo> out;
    try {
      // Keep every device object alive: emulation caches name/bdf per device object.
      while (devices_.size() < static_cast<size_t>(*count))
        devices_.emplace_back(static_cast<unsigned>(devices_.size()));
      for (int i = 0; i < *count; ++i) {
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

}  // namespace

Sensors ParseXrtSensors(const std::string& thermal_json, const std::string& electrical_json) {
  Sensors s;
  auto thermal = nlohmann::json::parse(thermal_json, nullptr, false);
  if (thermal.is_object() && thermal.contains("thermals") && thermal["thermals"].is_array()) {
    for (const auto& t : thermal["thermals"]) {
      if (!t.is_object() || !IsPresent(t)) continue;
      auto temp = t.contains("temp_C") ? ToDouble(t["temp_C"]) : std::nullopt;
      std::string id = t.value("location_id", "");
      if (!temp) {
        // A number that does not fit a double is an overflowed reading, not a missing sensor.
        const char* name = id == "fpga0"      ? "fpga temperature"
                           : id == "fpga_hbm" ? "hbm temperature"
                                              : nullptr;
        if (name != nullptr && t.contains("temp_C") && t["temp_C"].is_string()) {
          const std::string& raw = t["temp_C"].get_ref<const std::string&>();
          if (!raw.empty() && (std::isdigit(static_cast<unsigned char>(raw[0])) != 0 || raw[0] == '-')) {
            s.bad_readings.push_back(std::string(name) + " reading out of range: \"" + raw.substr(0, 64) +
                                     "\"");
          }
        }
        continue;
      }
      if (id == "fpga0") {
        s.fpga_temp_c = temp;
      } else if (id == "fpga_hbm") {
        s.hbm_temp_c = temp;
      } else if (id.rfind("pcb_", 0) == 0) {
        if (!s.board_temp_c || *temp > *s.board_temp_c) s.board_temp_c = temp;
      } else if (id.rfind("cage_temp_", 0) == 0 && id.size() == 11 && id[10] >= '0' && id[10] <= '3') {
        size_t idx = static_cast<size_t>(id[10] - '0');
        if (s.cage_temp_c.size() <= idx) s.cage_temp_c.resize(idx + 1);
        s.cage_temp_c[idx] = temp;
      }
    }
  }
  auto electrical = nlohmann::json::parse(electrical_json, nullptr, false);
  if (electrical.is_object()) {
    if (electrical.contains("power_consumption_watts")) {
      auto p = ToDouble(electrical["power_consumption_watts"]);
      if (p && *p > 0) s.power_w = p;
    }
    if (electrical.contains("power_rails") && electrical["power_rails"].is_array()) {
      for (const auto& r : electrical["power_rails"]) {
        if (!r.is_object() || r.value("id", "") != "vccint" || !r.contains("voltage")) continue;
        const auto& v = r["voltage"];
        if (v.is_object() && IsPresent(v) && v.contains("volts")) s.vccint_v = ToDouble(v["volts"]);
      }
    }
  }
  return s;
}

std::shared_ptr<XrtProbe> MakeLibXrtProbe() { return std::make_shared<LibXrtProbe>(); }

std::optional<int> EmulatedDeviceCount() {
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
  return std::nullopt;
}

Result<std::string> PrepareXrtEnvironment(int emulated_cards, const std::string& work_dir) {
  // NOLINTBEGIN(concurrency-mt-unsafe): called once from main before any thread starts.
  std::error_code ec;
  std::string dir = work_dir;
  const bool need_dir = emulated_cards > 0 || std::getenv("XILINX_XRT") == nullptr;
  if (dir.empty() && need_dir) {
    std::string tmpl = (fs::temp_directory_path(ec) / "hyperaccel-xrt-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr)
      return Unavailable("cannot create a temp dir for the XRT environment");
    dir = tmpl;
  }
  if (std::getenv("XILINX_XRT") == nullptr) {
    if (fs::exists("/opt/xilinx/xrt/lib", ec)) {
      setenv("XILINX_XRT", "/opt/xilinx/xrt", 1);
    } else {
      fs::path lib = fs::path(dir) / "lib";
      fs::remove(lib, ec);
      fs::create_directory_symlink(CoreutilDir(), lib, ec);
      if (ec) return Unavailable("cannot create " + lib.string() + ": " + ec.message());
      setenv("XILINX_XRT", dir.c_str(), 1);
    }
  }
  if (emulated_cards > 0) {
    nlohmann::ordered_json em = {{"Version", {{"Major", "1"}, {"Minor", "0"}, {"FileVersion", "2.0"}}},
                                 {"Platform",
                                  {{"Boards",
                                    {{{"Devices",
                                       {{{"Name", "xilinx_u55c_gen3x16_xdma_3_202210_1"},
                                         {"NumDevices", std::to_string(emulated_cards)}}}},
                                      {"NumBoards", "1"}}}}}}};
    std::ofstream out(fs::path(dir) / "emconfig.json");
    out << em.dump(2) << "\n";
    if (!out) return Unavailable("cannot write emconfig.json into " + dir);
    setenv("EMCONFIG_PATH", dir.c_str(), 1);
    setenv("XCL_EMULATION_MODE", "sw_emu", 1);
  }
  return dir;
  // NOLINTEND(concurrency-mt-unsafe)
}

OpenClFacts ProbeOpenCl() {
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

}  // namespace hyperaccel::hw
