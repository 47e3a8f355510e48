#include "hyperaccel/xrt/discovery.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "hyperaccel/common/cli.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/xrt/cabling.h"
#include "hyperaccel/xrt/health.h"
#include "hyperaccel/xrt/link_probe.h"
#include "hyperaccel/xrt/links.h"
#include "hyperaccel/xrt/sysfs_scanner.h"
#include "hyperaccel/xrt/xrt_probe.h"

namespace hyperaccel::hw {
namespace fs = std::filesystem;

namespace {

constexpr int kMaxEmulatedCards = 64;
constexpr uint16_t kXilinxVendor = 0x10ee;
constexpr uint16_t kU55cUserDevice = 0x505d;

bool IsRealSysfs(const std::string& root) {
  std::error_code ec;
  return fs::weakly_canonical(root, ec) == fs::path("/sys");
}

// A deterministic serial for emulated card `index` of `node`: never a real board serial (those
// have no dash), unique across nodes, stable across restarts.
std::string EmulatedSerial(const std::string& node, size_t index) {
  std::string idx = std::to_string(index);
  if (idx.size() < 2) idx.insert(0, 2 - idx.size(), '0');
  return "EMU-" + node + "-" + idx;
}

}  // namespace

void AddDiscoveryFlags(CLI::App& app, DiscoveryOptions& o) {
  const cli::FlagGroup group(app, cli::kGroupDiscovery);
  const std::string env = "HYPERACCEL_";
  app.add_option("--sysfs-root", o.sysfs_root, "sysfs mount to scan (XRT is probed only when this is /sys)")
      ->envname(cli::EnvName(env, "sysfs-root"))
      ->capture_default_str();
  app.add_option("--cabling", o.cabling_file, "cluster-wide cabling file (YAML) listing card-to-card links")
      ->envname(cli::EnvName(env, "cabling"));
  app.add_option("--link-register-map", o.register_map_file,
                 "YAML register maps of the link IP per xclbin UUID (enables the link-IP probe)")
      ->envname(cli::EnvName(env, "link-register-map"));
  app.add_option("--emulate", o.emulate,
                 "use N Alveo U55C cards from XRT software emulation instead of hardware (cabled as a ring "
                 "unless --cabling says otherwise)")
      ->envname(cli::EnvName(env, "emulate"))
      ->check(CLI::Range(0, kMaxEmulatedCards))
      ->capture_default_str();
  app.add_option("--node-name", o.node_name,
                 "this node's Kubernetes name (default: $NODE_NAME, then hostname)")
      ->envname(cli::EnvName(env, "node-name"));
  app.add_option("--xrt", o.xrt_mode, "probe cards through XRT: auto (when sysfs root is /sys) or off")
      ->envname(cli::EnvName(env, "xrt"))
      ->check(CLI::IsMember({"auto", "off"}))
      ->capture_default_str();
  app.add_option_function<int>(
         "--xrt-probe-timeout", [&o](int ms) { o.xrt_probe_timeout = std::chrono::milliseconds(ms); },
         "milliseconds one run of the XRT probe helper (hyperaccel-xrt-probe) may take before it is killed "
         "[5000]")
      ->envname(cli::EnvName(env, "xrt-probe-timeout"))
      ->check(CLI::Range(100, 600000));
  app.add_option("--temp-limit", o.temp_limit_c, "FPGA/HBM temperature (°C) above which a card is unhealthy")
      ->envname(cli::EnvName(env, "temp-limit"))
      ->check(CLI::Range(20.0, 150.0))
      ->capture_default_str();
  app.add_option_function<int>(
         "--vanish-grace", [&o](int s) { o.vanish_grace = std::chrono::seconds(s); },
         "seconds a vanished card stays listed (unhealthy) before it is dropped [60]")
      ->envname(cli::EnvName(env, "vanish-grace"))
      ->check(CLI::Range(0, 86400));
  app.add_option("--recovery-probes", o.recovery_probes,
                 "consecutive good scans before an unhealthy card is healthy again")
      ->envname(cli::EnvName(env, "recovery-probes"))
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
}

std::string ResolveNodeName(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  // Read at start-up, before threads exist.
  const char* env = std::getenv("NODE_NAME");  // NOLINT(concurrency-mt-unsafe)
  if (env != nullptr && *env != '\0') {
    return env;
  }
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') return host;
  return "localhost";
}

struct Discovery::Impl {
  DiscoveryOptions options;
  DiscoveryDeps deps;
  std::optional<Cabling> cabling;
  std::optional<RegisterMap> register_maps;
  std::unique_ptr<RegisterReader> register_reader;
  std::unique_ptr<HealthTracker> health;
  bool xrt_enabled = false;
  NodeFacts facts;  // computed once at Create (XRT and OpenCL do not come and go)
  std::vector<XrtCardInfo> emulated;

  Result<Inventory> Scan();
  std::vector<Card> EmulatedCards() const;
};

Discovery::Discovery(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Discovery::~Discovery() = default;
const DiscoveryOptions& Discovery::options() const { return impl_->options; }
Result<Inventory> Discovery::Scan() { return impl_->Scan(); }

Result<std::unique_ptr<Discovery>> Discovery::Create(DiscoveryOptions options, DiscoveryDeps deps) {
  auto impl = std::make_unique<Impl>();
  options.node_name = ResolveNodeName(options.node_name);
  if (options.emulate < 0 || options.emulate > kMaxEmulatedCards) {
    return InvalidArgument("--emulate must be between 0 and " + std::to_string(kMaxEmulatedCards));
  }
  if (!options.cabling_file.empty()) {
    auto cabling = LoadCablingFile(options.cabling_file);
    if (!cabling.ok()) return cabling.status();
    impl->cabling = std::move(cabling.value());
  }
  if (!options.register_map_file.empty()) {
    auto maps = LoadRegisterMapFile(options.register_map_file);
    if (!maps.ok()) return maps.status();
    impl->register_maps = std::move(maps.value());
  }
  HealthOptions ho;
  ho.max_temp_c = options.temp_limit_c;
  ho.vanish_grace = options.vanish_grace;
  ho.recovery_probes = options.recovery_probes;
  impl->health =
      deps.clock ? std::make_unique<HealthTracker>(ho, deps.clock) : std::make_unique<HealthTracker>(ho);

  const bool real_sysfs = IsRealSysfs(options.sysfs_root);
  // An injected probe (tests) never looks at the real machine, so it may pair with any root.
  impl->xrt_enabled =
      options.emulate > 0 || (options.xrt_mode == "auto" && (real_sysfs || deps.xrt != nullptr));
  // XRT (and the module that links it) is loaded only when there is a card for it to probe: a node
  // without Alveo cards never maps it. Cards are not hot-plugged; a node that gains one reboots.
  bool no_cards = false;
  if (impl->xrt_enabled && !deps.xrt && options.emulate == 0 && ScanSysfs(options.sysfs_root).cards.empty()) {
    impl->xrt_enabled = false;
    no_cards = true;
  }
  if (impl->xrt_enabled && !deps.xrt) {
    auto env = PrepareXrtEnvironment(options.emulate, "", options.xrt_probe_timeout);
    if (!env.ok()) return env.status();
    deps.xrt = MakeLibXrtProbe(options.xrt_probe_timeout);
  }
  if (impl->xrt_enabled) {
    impl->facts = deps.xrt->Facts();
    if (!impl->facts.xrt_available) {
      HA_LOG(kWarn, "XRT unavailable; discovering from sysfs only").kv("reason", impl->facts.xrt_detail);
    }
  } else {
    impl->facts.xrt_detail = options.xrt_mode == "off" ? "disabled by --xrt=off"
                             : no_cards                ? "not loaded: no Alveo card in sysfs at start-up"
                                        : "off: --sysfs-root is not /sys (XRT would read the real machine)";
  }
  if (options.emulate > 0) {
    auto devices = deps.xrt->OpenEmulated();
    if (!devices.ok()) return devices.status();
    if (devices->size() != static_cast<size_t>(options.emulate)) {
      return Internal("XRT emulation exposes " + std::to_string(devices->size()) + " devices, expected " +
                      std::to_string(options.emulate));
    }
    impl->emulated = std::move(devices.value());
    impl->facts.emulation = true;
  }
  if (impl->xrt_enabled && (real_sysfs || options.emulate > 0)) {
    OpenClFacts cl = ProbeOpenCl(options.xrt_probe_timeout);
    impl->facts.opencl_xilinx = cl.xilinx;
    impl->facts.opencl_detail = cl.detail;
  } else {
    impl->facts.opencl_detail = no_cards || options.xrt_mode == "off"
                                    ? "not probed (XRT not loaded)"
                                    : "not probed (--sysfs-root is not /sys)";
  }
  if (impl->register_maps && options.emulate == 0) {
    impl->register_reader = std::make_unique<BarRegisterReader>(options.sysfs_root);
  }
  impl->options = std::move(options);
  impl->deps = std::move(deps);
  return std::unique_ptr<Discovery>(new Discovery(std::move(impl)));
}

std::vector<Card> Discovery::Impl::EmulatedCards() const {
  std::vector<Card> cards;
  for (size_t i = 0; i < emulated.size(); ++i) {
    const XrtCardInfo& x = emulated[i];
    Card c;
    c.id = x.bdf;
    c.serial = EmulatedSerial(options.node_name, i);
    c.shell = x.name;
    c.vendor_id = kXilinxVendor;
    c.device_id = kU55cUserDevice;
    c.product = std::string(ProductName(c.vendor_id, c.device_id));
    // Emulated devices have no PCI function of their own (their addresses collide with real ones),
    // so nothing is read from sysfs; the render node is where a real card would have it.
    c.render_node = "/dev/dri/renderD" + std::to_string(128 + i);
    c.xclbin_uuid = x.xclbin_uuid;
    c.sensors = x.sensors;
    c.ports.resize(static_cast<size_t>(QsfpCageCount(c.vendor_id, c.device_id)));
    for (size_t p = 0; p < c.ports.size(); ++p) c.ports[p].index = static_cast<int>(p);
    c.emulated = true;
    cards.push_back(std::move(c));
  }
  std::sort(cards.begin(), cards.end(), [](const Card& a, const Card& b) { return a.id < b.id; });
  return cards;
}

Result<Inventory> Discovery::Impl::Scan() {
  Inventory inv;
  inv.node_name = options.node_name;
  inv.facts = facts;
  std::vector<Card> cards;
  if (options.emulate > 0) {
    cards = EmulatedCards();
  } else {
    std::error_code ec;
    if (!fs::is_directory(fs::path(options.sysfs_root) / "bus" / "pci", ec)) {
      return Unavailable("sysfs root " + options.sysfs_root + " has no bus/pci (is it a sysfs mount?)");
    }
    SysfsScan scan = ScanSysfs(options.sysfs_root);
    for (const auto& w : scan.warnings) HA_LOG(kDebug, "sysfs").kv("warning", w);
    cards = std::move(scan.cards);
    if (xrt_enabled && facts.xrt_available) {
      // One XRT probe (one helper run) for all the ready cards of this scan.
      std::vector<Card*> ready;
      std::vector<std::string> bdfs;
      for (Card& c : cards) {
        if (c.health != Health::kHealthy) continue;
        ready.push_back(&c);
        bdfs.push_back(c.id);
      }
      std::vector<Result<XrtCardInfo>> infos = deps.xrt->ProbeCards(bdfs);
      for (size_t i = 0; i < ready.size() && i < infos.size(); ++i) {
        Card& c = *ready[i];
        const auto& info = infos[i];
        if (!info.ok()) {
          HA_LOG(kDebug, "xrt probe failed").kv("card", c.id).kv("reason", info.status().message());
          continue;
        }
        if (c.serial.empty()) c.serial = info->serial;
        if (c.xclbin_uuid.empty()) c.xclbin_uuid = info->xclbin_uuid;
        const Sensors& s = info->sensors;
        if (s.fpga_temp_c) c.sensors.fpga_temp_c = s.fpga_temp_c;
        if (s.hbm_temp_c) c.sensors.hbm_temp_c = s.hbm_temp_c;
        if (s.board_temp_c) c.sensors.board_temp_c = s.board_temp_c;
        if (s.power_w) c.sensors.power_w = s.power_w;
        if (s.vccint_v) c.sensors.vccint_v = s.vccint_v;
        c.sensors.bad_readings.insert(c.sensors.bad_readings.end(), s.bad_readings.begin(),
                                      s.bad_readings.end());
        if (!info->last_error.empty()) {
          HA_LOG(kInfo, "card reports a hardware error").kv("card", c.id).kv("error", info->last_error);
        }
      }
    }
  }
  inv.cards = health->Update(std::move(cards));

  // Links: the cabling file, else (emulation) a ring over the emulated cards.
  std::optional<Cabling> ring;
  const Cabling* cab = cabling ? &*cabling : nullptr;
  if (cab == nullptr && options.emulate > 0) {
    std::vector<std::string> serials;
    for (const auto& c : inv.cards) serials.push_back(c.serial);
    ring = RingCabling(options.node_name, serials);
    cab = &*ring;
  }
  if (cab != nullptr) {
    for (const auto& w : CheckCablingAgainstCards(*cab, options.node_name, inv.cards)) {
      HA_LOG(kDebug, "cabling").kv("warning", w);
    }
  }
  std::optional<ProbeObservations> observed;
  if (register_maps && register_reader)
    observed = LinkProbe(*register_maps, *register_reader).Probe(inv.cards);
  QsfpPairing qsfp = PairByCableSerial(inv.cards);
  for (const auto& w : qsfp.warnings) HA_LOG(kDebug, "qsfp pairing").kv("warning", w);
  inv.links = MergeLinks(options.node_name, inv.cards, cab, observed ? &*observed : nullptr, &qsfp);
  if (options.emulate > 0) {
    // Emulation has no link hardware: every cabled link of an emulated card works as cabled.
    auto local_card = [&](const PortRef& end) {
      return (end.node.empty() || end.node == options.node_name) && inv.FindBySerial(end.serial) != nullptr;
    };
    for (auto& l : inv.links) {
      if (local_card(l.a) || local_card(l.b)) {
        l.state = LinkState::kUp;
        l.detail = "emulated";
      }
    }
  }
  return inv;
}

bool InventoryChanged(const Inventory& a, const Inventory& b) {
  if (a.node_name != b.node_name || a.cards.size() != b.cards.size() || a.links.size() != b.links.size())
    return true;
  if (a.facts.xrt_available != b.facts.xrt_available || a.facts.opencl_xilinx != b.facts.opencl_xilinx)
    return true;
  for (size_t i = 0; i < a.cards.size(); ++i) {
    const Card& x = a.cards[i];
    const Card& y = b.cards[i];
    if (x.id != y.id || x.serial != y.serial || x.health != y.health || x.health_reason != y.health_reason ||
        x.numa_node != y.numa_node || x.shell != y.shell || x.xclbin_uuid != y.xclbin_uuid ||
        x.render_node != y.render_node || x.mgmt_node != y.mgmt_node) {
      return true;
    }
  }
  for (size_t i = 0; i < a.links.size(); ++i) {
    const Link& x = a.links[i];
    const Link& y = b.links[i];
    if (x.a != y.a || x.b != y.b || x.state != y.state || x.kind != y.kind) return true;
  }
  return false;
}

Rescanner::Rescanner(Discovery* discovery, std::chrono::milliseconds interval, OnChange on_change)
    : discovery_(discovery), interval_(interval), on_change_(std::move(on_change)) {}

Rescanner::~Rescanner() { Stop(); }

void Rescanner::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Rescanner::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Inventory Rescanner::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

void Rescanner::ScanNow() {
  std::lock_guard<std::mutex> scan_lock(scan_mu_);
  auto inv = discovery_->Scan();
  if (!inv.ok()) {
    HA_LOG(kWarn, "discovery scan failed; keeping the last inventory").kv("reason", inv.status().message());
    return;
  }
  bool changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed = !have_ || InventoryChanged(current_, *inv);
    current_ = *inv;
    have_ = true;
  }
  if (changed && on_change_) on_change_(*inv);
}

void Rescanner::Loop() {
  for (;;) {
    ScanNow();
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, interval_, [this] { return stop_; })) return;
  }
}

}  // namespace hyperaccel::hw
