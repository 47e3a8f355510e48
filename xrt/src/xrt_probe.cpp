#include "hyperaccel/xrt/xrt_probe.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hyperaccel/common/log.h"
#include "xrt_module.h"

namespace hyperaccel::hw {
namespace fs = std::filesystem;
namespace {

struct LoadedModule {
  const XrtModuleApi* api = nullptr;
  std::string error;  // why it could not be loaded
};

// Where libhyperaccel_xrt_probe.so may be: $HYPERACCEL_XRT_MODULE alone when set (an operator's
// explicit choice), else next to the binary, <binary>/../lib/hyperaccel/ (installed layout), the
// build tree, then the loader's search path.
std::vector<std::string> ModuleCandidates() {
  std::vector<std::string> out;
  // Read once, from the first discovery set-up (before the daemon's threads start).
  const char* env = std::getenv("HYPERACCEL_XRT_MODULE");  // NOLINT(concurrency-mt-unsafe)
  if (env != nullptr && *env != '\0') return {env};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back((exe.parent_path() / kXrtModuleFile).string());
    out.push_back((exe.parent_path().parent_path() / "lib" / "hyperaccel" / kXrtModuleFile).string());
  }
#ifdef HYPERACCEL_XRT_MODULE_BUILD_PATH
  out.emplace_back(HYPERACCEL_XRT_MODULE_BUILD_PATH);
#endif
  out.emplace_back(kXrtModuleFile);
  return out;
}

// Opens one candidate. Errors name the file and say what is wrong with it.
Result<const XrtModuleApi*> OpenModule(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();  // NOLINT(concurrency-mt-unsafe): per-thread state in glibc
    return Unavailable(why != nullptr ? why : path + ": cannot be loaded");
  }
  using EntryFn = const XrtModuleApi* (*)();
  auto entry = reinterpret_cast<EntryFn>(dlsym(handle, kXrtModuleEntry));
  const XrtModuleApi* api = entry != nullptr ? entry() : nullptr;
  if (api == nullptr || api->abi != kXrtModuleAbi) {
    dlclose(handle);
    return FailedPrecondition(path + ": not a " + kXrtModuleFile + " of this build (" +
                              (api == nullptr ? std::string("no ") + kXrtModuleEntry
                                              : "interface version " + std::to_string(api->abi)) +
                              ", expected version " + std::to_string(kXrtModuleAbi) + ")");
  }
  return api;  // never unloaded: XRT keeps threads and static state
}

LoadedModule LoadModule() {
  std::string tried;
  for (const std::string& path : ModuleCandidates()) {
    std::error_code ec;
    if (path.find('/') != std::string::npos && !fs::exists(path, ec)) {
      tried += (tried.empty() ? "" : "; ") + path + ": no such file";
      continue;
    }
    auto api = OpenModule(path);
    if (!api.ok()) {
      tried += (tried.empty() ? "" : "; ") + api.status().message();
      continue;
    }
    HA_LOG(kDebug, "XRT probe module loaded").kv("path", path);
    return {api.value(), ""};
  }
  return {nullptr, std::string("XRT probe module ") + kXrtModuleFile + " not loadable" +
                       (tried.empty() ? " (not found next to the binary)" : ": " + tried)};
}

// Loaded on first use only: processes that never need XRT never map it.
const LoadedModule& Module() {
  static const LoadedModule loaded = LoadModule();
  return loaded;
}

// Stands in for XRT when the module cannot be loaded: discovery then works from sysfs alone.
class UnavailableXrtProbe : public XrtProbe {
 public:
  explicit UnavailableXrtProbe(std::string why) : why_(std::move(why)) {}
  NodeFacts Facts() override {
    NodeFacts f;
    f.xrt_available = false;
    f.xrt_detail = why_;
    return f;
  }
  Result<XrtCardInfo> ProbeCard(const std::string& bdf) override {
    return Unavailable("card " + bdf + ": " + why_);
  }
  Result<std::vector<XrtCardInfo>> OpenEmulated() override {
    return Unavailable("XRT software emulation needs XRT: " + why_);
  }

 private:
  std::string why_;
};

}  // namespace

std::shared_ptr<XrtProbe> MakeLibXrtProbe() {
  const LoadedModule& m = Module();
  if (m.api == nullptr) return std::make_shared<UnavailableXrtProbe>(m.error);
  return std::shared_ptr<XrtProbe>(m.api->make_probe());
}

Status CheckXrtModule(const std::string& path) {
  auto api = OpenModule(path);
  return api.ok() ? Status::Ok() : api.status();
}

std::optional<int> EmulatedDeviceCount() {
  const LoadedModule& m = Module();
  if (m.api == nullptr) return std::nullopt;
  const int n = m.api->emulated_device_count();
  if (n < 0) return std::nullopt;
  return n;
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
    } else if (const LoadedModule& m = Module(); m.api != nullptr) {
      // (Without the module there is no XRT to point at; MakeLibXrtProbe() reports why.)
      fs::path lib = fs::path(dir) / "lib";
      fs::remove(lib, ec);
      fs::create_directory_symlink(m.api->coreutil_dir(), lib, ec);
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
  const LoadedModule& m = Module();
  if (m.api == nullptr) return {false, "not probed: " + m.error};
  return m.api->probe_opencl();
}

}  // namespace hyperaccel::hw
