// The daemon side of the XRT probe: runs the helper hyperaccel-xrt-probe (xrt_probe_helper.cpp) and
// reads its answers (xrt_wire.h). XRT never runs in this process.
#include "hyperaccel/xrt/xrt_probe.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "helper_process.h"
#include "hyperaccel/common/log.h"
#include "xrt_wire.h"

namespace hyperaccel::hw {
namespace fs = std::filesystem;
namespace {

bool IsExecutableFile(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0;
}

Result<std::string> LocateHelper() {
  // Read once, from the first discovery set-up (before the daemon's threads start).
  const char* env = std::getenv("HYPERACCEL_XRT_PROBE");  // NOLINT(concurrency-mt-unsafe)
  std::vector<std::string> candidates;
  if (env != nullptr && *env != '\0') {
    candidates.emplace_back(env);
  } else {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      candidates.push_back((exe.parent_path() / kXrtProbeHelper).string());
      candidates.push_back(
          (exe.parent_path().parent_path() / "lib" / "hyperaccel" / kXrtProbeHelper).string());
    }
#ifdef HYPERACCEL_XRT_PROBE_BUILD_PATH
    candidates.emplace_back(HYPERACCEL_XRT_PROBE_BUILD_PATH);
#endif
  }
  std::string tried;
  for (const std::string& path : candidates) {
    if (IsExecutableFile(path)) return path;
    tried += (tried.empty() ? "" : ", ") + path;
  }
  return NotFound(std::string("XRT probe helper ") + kXrtProbeHelper + " not found (tried " +
                  (tried.empty() ? std::string("nothing: the binary's path is unknown") : tried) + ")");
}

// Runs one request and returns the parsed answer. Every failure names the helper and the request.
Result<nlohmann::json> Ask(const std::string& helper, const std::vector<std::string>& request,
                           std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{helper};
  argv.insert(argv.end(), request.begin(), request.end());
  const std::string what = "XRT probe helper " + helper + " " + request.front();
  HelperLimits limits;
  limits.timeout = timeout;
  auto run = RunHelper(argv, limits);
  if (!run.ok()) {
    // The runner's message starts with the helper's path.
    return Status(run.status().code(),
                  "XRT probe helper " + run.status().message() + " (" + request.front() + ")");
  }
  HA_LOG(kDebug, "xrt probe helper run")
      .kv("request", request.front())
      .kv("wall_ms", static_cast<double>(run->wall.count()) / 1000.0)
      .kv("cpu_ms", static_cast<double>(run->cpu.count()) / 1000.0)
      .kv("max_rss_kib", run->max_rss_kib);
  if (run->exit_code != 0) return Unavailable(what + ": " + DescribeHelperEnd(*run));
  auto answer = wire::ParseAnswer(run->out);
  if (!answer.ok()) return answer.status().WithContext(what);
  return answer;
}

// Stands in for XRT when the helper cannot be found: discovery then works from sysfs alone.
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

class HelperXrtProbe : public XrtProbe {
 public:
  HelperXrtProbe(std::string helper, std::chrono::milliseconds timeout)
      : helper_(std::move(helper)), timeout_(timeout) {}

  NodeFacts Facts() override {
    auto answer = Ask(helper_, {"facts"}, timeout_);
    Result<NodeFacts> facts = answer.ok() ? wire::FactsFromJson(*answer) : Result<NodeFacts>(answer.status());
    if (!facts.ok()) {
      NodeFacts f;
      f.xrt_available = false;
      f.xrt_detail = facts.status().message();
      return f;
    }
    return *facts;
  }

  Result<XrtCardInfo> ProbeCard(const std::string& bdf) override {
    return std::move(ProbeCards({bdf}).front());
  }

  std::vector<Result<XrtCardInfo>> ProbeCards(const std::vector<std::string>& bdfs) override {
    if (bdfs.empty()) return {};
    std::vector<std::string> request{"cards"};
    request.insert(request.end(), bdfs.begin(), bdfs.end());
    auto answer = Ask(helper_, request, timeout_);
    Result<std::vector<Result<XrtCardInfo>>> cards =
        answer.ok() ? wire::CardsFromJson(*answer, bdfs)
                    : Result<std::vector<Result<XrtCardInfo>>>(answer.status());
    if (cards.ok()) {
      NoteOutcome(Status::Ok());
      return std::move(cards.value());
    }
    // Errors of the answer's shape do not name the helper yet; the runner's errors do.
    const Status failed =
        answer.ok() ? cards.status().WithContext("XRT probe helper " + helper_ + " cards") : cards.status();
    NoteOutcome(failed);
    std::vector<Result<XrtCardInfo>> out;
    out.reserve(bdfs.size());
    for (const std::string& bdf : bdfs) out.emplace_back(failed.WithContext("card " + bdf));
    return out;
  }

  Result<std::vector<XrtCardInfo>> OpenEmulated() override {
    auto answer = Ask(helper_, {"emulated"}, timeout_);
    if (!answer.ok()) return answer.status();
    auto devices = wire::EmulatedFromJson(*answer);
    if (!devices.ok()) return devices.status().WithContext("XRT probe helper " + helper_ + " emulated");
    return devices;
  }

 private:
  // One warning when batches start failing and one line when they work again: no log per scan.
  void NoteOutcome(const Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!st.ok() && !failing_) {
      HA_LOG(kWarn, "XRT probe failed; cards are read from sysfs only until it works")
          .kv("reason", st.message());
    } else if (st.ok() && failing_) {
      HA_LOG(kInfo, "XRT probe works again");
    }
    failing_ = !st.ok();
  }

  std::string helper_;
  std::chrono::milliseconds timeout_;
  std::mutex mu_;
  bool failing_ = false;
};

}  // namespace

Result<std::string> FindXrtHelper() {
  static const Result<std::string> found = LocateHelper();
  return found;
}

std::shared_ptr<XrtProbe> MakeLibXrtProbe(std::chrono::milliseconds timeout) {
  auto helper = FindXrtHelper();
  if (!helper.ok()) return std::make_shared<UnavailableXrtProbe>(helper.status().message());
  return MakeXrtHelperProbe(*helper, timeout);
}

std::shared_ptr<XrtProbe> MakeXrtHelperProbe(std::string helper_path, std::chrono::milliseconds timeout) {
  return std::make_shared<HelperXrtProbe>(std::move(helper_path), timeout);
}

Result<std::string> PrepareXrtEnvironment(int emulated_cards, const std::string& work_dir,
                                          std::chrono::milliseconds timeout) {
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
    } else if (auto helper = FindXrtHelper(); helper.ok()) {
      // (Without the helper there is no XRT to point at; MakeLibXrtProbe() reports why.)
      auto answer = Ask(*helper, {"lib-dir"}, timeout);
      Result<std::string> lib_dir =
          answer.ok() ? wire::LibDirFromJson(*answer) : Result<std::string>(answer.status());
      if (!lib_dir.ok()) {
        HA_LOG(kWarn, "cannot tell where libxrt_coreutil is; XILINX_XRT left unset")
            .kv("reason", lib_dir.status().message());
      } else {
        fs::path lib = fs::path(dir) / "lib";
        fs::remove(lib, ec);
        fs::create_directory_symlink(*lib_dir, lib, ec);
        if (ec) return Unavailable("cannot create " + lib.string() + ": " + ec.message());
        setenv("XILINX_XRT", dir.c_str(), 1);
      }
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

OpenClFacts ProbeOpenCl(std::chrono::milliseconds timeout) {
  auto helper = FindXrtHelper();
  if (!helper.ok()) return {false, "not probed: " + helper.status().message()};
  auto answer = Ask(*helper, {"opencl"}, timeout);
  Result<OpenClFacts> facts =
      answer.ok() ? wire::OpenClFromJson(*answer) : Result<OpenClFacts>(answer.status());
  if (!facts.ok()) return {false, "not probed: " + facts.status().message()};
  return *facts;
}

}  // namespace hyperaccel::hw
