// hyperaccel-device-plugin: advertises the node's Alveo cards to the kubelet.
#include <CLI/CLI.hpp>
#include <chrono>

#include "hyperaccel/common/admin_server.h"
#include "hyperaccel/common/cli.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/shutdown.h"
#include "hyperaccel/device_plugin/device_source.h"
#include "hyperaccel/device_plugin/plugin.h"
#include "hyperaccel/xrt/discovery.h"

namespace dp = hyperaccel::device_plugin;

int main(int argc, char** argv) {
  const auto process_start = std::chrono::steady_clock::now();
  CLI::App app{
      "HyperAccel device plugin: advertises Alveo FPGA cards to the kubelet (device-plugin API v1beta1)"};
  hyperaccel::cli::CommonFlags common;
  hyperaccel::cli::AddCommonFlags(app, common, "HYPERACCEL_");
  hyperaccel::hw::DiscoveryOptions discovery_options;
  hyperaccel::hw::AddDiscoveryFlags(app, discovery_options);
  dp::PluginOptions options;
  dp::AddPluginFlags(app, options);
  std::string metrics_address = ":9400";
  app.add_option("--metrics-address", metrics_address,
                 "host:port for /metrics and /healthz; \"off\" = no endpoint")
      ->envname(hyperaccel::cli::EnvName("HYPERACCEL_", "metrics-address"))
      ->group(hyperaccel::cli::kGroupEndpoints)
      ->capture_default_str();
  int rescan_ms = 5000;
  app.add_option("--rescan-ms", rescan_ms, "Milliseconds between hardware rescans")
      ->envname(hyperaccel::cli::EnvName("HYPERACCEL_", "rescan-ms"))
      ->group(hyperaccel::cli::kGroupDiscovery)
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  if (const int rc = hyperaccel::cli::Parse(app, argc, argv); rc >= 0) return rc;
  if (!hyperaccel::cli::ApplyCommonFlags(common, "device-plugin")) return 2;
  if (metrics_address == "off") metrics_address.clear();
  options.sysfs_root = discovery_options.sysfs_root;
  if (auto st = dp::ValidateOptions(options); !st.ok()) {
    HA_LOG(kError, "invalid configuration").kv("error", st.message());
    return 2;
  }
  hyperaccel::shutdown::InstallSignalHandlers();

  hyperaccel::metrics::Registry registry;
  hyperaccel::metrics::AddProcessMetrics(registry);

  auto discovery = hyperaccel::hw::Discovery::Create(discovery_options);
  if (!discovery.ok()) {
    HA_LOG(kError, "cannot start discovery").kv("error", discovery.status().message());
    return 2;
  }
  dp::DiscoverySource source(std::move(discovery).value(), std::chrono::milliseconds(rescan_ms));
  dp::Plugin plugin(options, &source, &registry);
  hyperaccel::AdminServer admin(
      &registry, [&plugin] { return plugin.Health(); }, [&plugin] { return plugin.Ready(); });
  if (auto st = admin.Start(metrics_address); !st.ok()) {
    HA_LOG(kError, "cannot serve metrics").kv("address", metrics_address).kv("error", st.message());
    return 1;
  }
  if (auto st = plugin.Start(); !st.ok()) {
    HA_LOG(kError, "cannot start").kv("error", st.message());
    return 1;
  }
  HA_LOG(kInfo, "started")
      .kv("resource", options.resource_name)
      .kv("kubelet_dir", options.kubelet_dir)
      .kv("startup_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - process_start)
                            .count());
  while (!hyperaccel::shutdown::WaitFor(std::chrono::hours(1))) {
  }
  HA_LOG(kInfo, "shutting down");
  plugin.Stop();
  admin.Stop();
  return 0;
}
