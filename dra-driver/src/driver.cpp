#include "hyperaccel/dra_driver/driver.h"

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <ostream>
#include <thread>

#include "hyperaccel/common/admin_server.h"
#include "hyperaccel/common/cli.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/shutdown.h"
#include "hyperaccel/dra_driver/kubelet_plugin.h"
#include "hyperaccel/dra_driver/node_server.h"

namespace hyperaccel::dra {
namespace {

std::string Env(const char* flag) { return cli::EnvName("HYPERACCEL_", flag); }

}  // namespace

void AddDriverFlags(CLI::App& app, DriverOptions& o) {
  const cli::FlagGroup group(app, "DRA driver");
  app.add_option("--kubeconfig", o.kubeconfig, "kubeconfig file (default: in-cluster, then $KUBECONFIG)")
      ->envname(Env("kubeconfig"))
      ->group(cli::kGroupKubernetes);
  app.add_option("--admin-address", o.admin_address, "host:port for /metrics and /healthz; \"off\" = none")
      ->envname(Env("admin-address"))
      ->group(cli::kGroupEndpoints)
      ->capture_default_str();
  app.add_option_function<int>(
         "--rescan-ms", [&o](int v) { o.rescan = std::chrono::milliseconds(v); },
         "milliseconds between hardware rescans (default 5000)")
      ->envname(Env("rescan-ms"))
      ->check(CLI::Range(100, 3600000));
  app.add_option_function<int>(
         "--resync-seconds", [&o](int v) { o.resync = std::chrono::seconds(v); },
         "seconds between full resyncs without events (default 600)")
      ->envname(Env("resync-seconds"))
      ->check(CLI::Range(1, 86400));
  app.add_flag("--once", o.once, "publish once and exit")->envname(Env("once"));
  app.add_option("--arc-sizes", o.arc_sizes_flag, "linked-arc sizes to publish, comma-separated")
      ->envname(Env("arc-sizes"))
      ->capture_default_str();
  app.add_option("--arcs", o.arcs_flag, "which arcs: aligned (start a multiple of the size) or all")
      ->envname(Env("arcs"))
      ->check(CLI::IsMember({"aligned", "all"}))
      ->capture_default_str();
  app.add_option("--partitionable", o.partitionable_flag,
                 "publish arcs with shared counters: auto (detect), true, false")
      ->envname(Env("partitionable"))
      ->capture_default_str();
  app.add_option("--device-taints", o.taints_flag,
                 "taint unhealthy cards instead of withdrawing them: auto (detect), true, false")
      ->envname(Env("device-taints"))
      ->capture_default_str();

  const cli::FlagGroup kubelet(app, "Kubelet plugin");
  app.add_flag("--kubelet-plugin", o.kubelet_plugin,
               "also serve the kubelet (registration, NodePrepareResources, health); "
               "--kubelet-plugin=false: publish slices only")
      ->envname(Env("kubelet-plugin"))
      ->capture_default_str();
  app.add_option(
         "--kubelet-dir", o.kubelet_dir,
         "kubelet root directory: plugins_registry/ and plugins/fpga.hyperaccel.ai/dra.sock go under it")
      ->envname(Env("kubelet-dir"))
      ->capture_default_str();
  app.add_option("--cdi-dir", o.cdi_dir,
                 "directory of the per-claim CDI specs (the runtime's dynamic CDI dir)")
      ->envname(Env("cdi-dir"))
      ->capture_default_str();
  app.add_option("--checkpoint-dir", o.checkpoint_dir,
                 "directory of the prepared-claims checkpoint, on a hostPath "
                 "(default <kubelet-dir>/plugins/fpga.hyperaccel.ai)")
      ->envname(Env("checkpoint-dir"));
  app.add_option_function<int>(
         "--claim-cleanup-seconds", [&o](int v) { o.claim_cleanup = std::chrono::seconds(v); },
         "seconds between checks that forget prepared claims whose ResourceClaim was deleted (default 60)")
      ->envname(Env("claim-cleanup-seconds"))
      ->check(CLI::Range(1, 86400));
  app.add_flag("--expose-mgmt", o.expose_mgmt,
               "also give containers the management node (/dev/xclmgmt*); it can reflash the card")
      ->envname(Env("expose-mgmt"));
  app.add_flag("--mount-xrt", o.mount_xrt, "mount the host XRT directory read-only and set XILINX_XRT")
      ->envname(Env("mount-xrt"));
  app.add_option("--xrt-host-dir", o.xrt_host_dir, "host XRT directory")
      ->envname(Env("xrt-host-dir"))
      ->capture_default_str();
  app.add_option("--xrt-container-dir", o.xrt_container_dir, "where the XRT directory appears in containers")
      ->envname(Env("xrt-container-dir"))
      ->capture_default_str();
  app.add_flag("--mount-icd", o.mount_icd, "mount the OpenCL ICD file read-only")->envname(Env("mount-icd"));
  app.add_option("--icd-file", o.icd_file, "OpenCL ICD file of the Xilinx platform")
      ->envname(Env("icd-file"))
      ->capture_default_str();
}

Result<std::vector<int>> ParseArcSizes(const std::string& value) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string::npos) comma = value.size();
    std::string part = value.substr(start, comma - start);
    if (!part.empty()) {
      int v = 0;
      auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
      if (ec != std::errc() || ptr != part.data() + part.size()) {
        return InvalidArgument("--arc-sizes: \"" + part + "\" is not a number");
      }
      out.push_back(v);
    }
    start = comma + 1;
  }
  if (auto st = ValidateArcSizes(out); !st.ok()) return st.WithContext("--arc-sizes");
  return out;
}

Status FinishDriverFlags(DriverOptions& o) {
  auto sizes = ParseArcSizes(o.arc_sizes_flag);
  if (!sizes.ok()) return sizes.status();
  o.publisher.arc_sizes = *sizes;
  o.publisher.alignment =
      o.arcs_flag == "all" ? placement::ArcAlignment::kAll : placement::ArcAlignment::kAligned;
  auto p = ParseTristate(o.partitionable_flag, "partitionable");
  if (!p.ok()) return p.status();
  o.publisher.partitionable = *p;
  auto t = ParseTristate(o.taints_flag, "device-taints");
  if (!t.ok()) return t.status();
  o.publisher.device_taints = *t;
  o.publisher.node_name = hw::ResolveNodeName(o.discovery.node_name);
  o.discovery.node_name = o.publisher.node_name;
  if (o.admin_address == "off") o.admin_address.clear();
  if (o.checkpoint_dir.empty()) o.checkpoint_dir = o.kubelet_dir + "/plugins/" + kDriverName;
  if (o.kubelet_plugin) {
    NodeServerOptions nso;
    nso.kubelet_dir = o.kubelet_dir;
    if (auto st = ValidateNodeServerOptions(nso); !st.ok()) return st.WithContext("--kubelet-dir");
    if (o.cdi_dir.empty() || o.cdi_dir.front() != '/')
      return InvalidArgument("--cdi-dir must be an absolute path");
    if (o.checkpoint_dir.front() != '/') return InvalidArgument("--checkpoint-dir must be an absolute path");
  }
  return Status::Ok();
}

int DryRunSlices(const DriverOptions& o, const std::string& server_version, std::ostream& out) {
  auto version = kube::ParseServerVersion(R"({"gitVersion":"v)" + server_version + R"("})");
  if (!version.ok()) {
    HA_LOG(kError, "bad --server-version")
        .kv("value", server_version)
        .kv("error", version.status().message());
    return 2;
  }
  auto discovery = hw::Discovery::Create(o.discovery);
  if (!discovery.ok()) {
    HA_LOG(kError, "cannot start discovery").kv("error", discovery.status().message());
    return 2;
  }
  auto inventory = (*discovery)->Scan();
  if (!inventory.ok()) {
    HA_LOG(kError, "scan failed").kv("error", inventory.status().message());
    return 1;
  }
  SliceOptions so;
  so.node_name = o.publisher.node_name;
  so.arc_sizes = o.publisher.arc_sizes;
  so.alignment = o.publisher.alignment;
  so.features.layout = version->AtLeast(1, 35) ? CounterLayout::kSplit : CounterLayout::kCombined;
  auto on = [&](Tristate t) {
    return t == Tristate::kOn || (t == Tristate::kAuto && version->AtLeast(1, 36));
  };
  so.features.partitionable = on(o.publisher.partitionable);
  so.features.device_taints = on(o.publisher.device_taints);
  auto slices = BuildSlices(*inventory, so);
  if (!slices.ok()) {
    HA_LOG(kError, "cannot build slices").kv("error", slices.status().message());
    return 1;
  }
  for (auto& s : slices->slices) s["spec"]["pool"]["generation"] = 1;
  out << SlicesYaml(slices->slices);
  return 0;
}

int RunDriver(DriverOptions o) {
  auto config = kube::ResolveClusterConfig(o.kubeconfig);
  if (!config.ok()) {
    HA_LOG(kError, "no API server configuration").kv("error", config.status().message());
    return 2;
  }
  kube::ClientOptions copts;
  copts.user_agent = "hyperaccel-dra-driver/0.1";
  auto client = kube::Client::Create(*config, copts);
  auto watch_client = kube::Client::Create(*config, copts);
  auto claim_client = kube::Client::Create(*config, copts);  // claim lookups run on gRPC threads
  if (!client.ok() || !watch_client.ok() || !claim_client.ok()) {
    HA_LOG(kError, "cannot create API client")
        .kv("error", (!client.ok()         ? client.status()
                      : !watch_client.ok() ? watch_client.status()
                                           : claim_client.status())
                         .message());
    return 2;
  }
  auto discovery = hw::Discovery::Create(o.discovery);
  if (!discovery.ok()) {
    HA_LOG(kError, "cannot start discovery").kv("error", discovery.status().message());
    return 2;
  }

  metrics::Registry registry;
  metrics::AddProcessMetrics(registry);
  Publisher publisher(client->get(), o.publisher, &registry);

  if (o.once) {
    auto inventory = (*discovery)->Scan();
    if (!inventory.ok()) {
      HA_LOG(kError, "scan failed").kv("error", inventory.status().message());
      return 1;
    }
    Status st = publisher.Sync(*inventory);
    if (!st.ok()) {
      HA_LOG(kError, "publish failed").kv("error", st.message());
      return 1;
    }
    HA_LOG(kInfo, "published once")
        .kv("slices", publisher.published().size())
        .kv("writes", publisher.stats().Writes());
    return 0;
  }

  std::mutex mu;
  std::condition_variable cv;
  bool dirty = true;
  std::optional<hw::Inventory> inventory;
  Status last = Unavailable("not synced yet");
  auto wake = [&] {
    {
      std::lock_guard<std::mutex> lk(mu);
      dirty = true;
    }
    cv.notify_all();
  };

  // The kubelet side: back ends first (they may need the API client), then the sockets.
  KubeletPlugin kubelet_plugin;
  std::unique_ptr<NodeServer> node_server;
  if (o.kubelet_plugin) {
    KubeletPluginContext ctx;
    ctx.client = claim_client->get();
    ctx.node_name = o.publisher.node_name;
    ctx.driver_name = kDriverName;
    ctx.cdi_dir = o.cdi_dir;
    ctx.checkpoint_dir = o.checkpoint_dir;
    ctx.registry = &registry;
    ctx.expose_mgmt = o.expose_mgmt;
    ctx.mount_xrt = o.mount_xrt;
    ctx.xrt_host_dir = o.xrt_host_dir;
    ctx.xrt_container_dir = o.xrt_container_dir;
    ctx.mount_icd = o.mount_icd;
    ctx.icd_file = o.icd_file;
    auto made = MakeKubeletPlugin(ctx);
    if (!made.ok()) {
      HA_LOG(kError, "cannot set up the kubelet plugin").kv("error", made.status().message());
      return 2;
    }
    kubelet_plugin = std::move(*made);
    NodeServerOptions nso;
    nso.kubelet_dir = o.kubelet_dir;
    node_server =
        std::make_unique<NodeServer>(nso, *kubelet_plugin.preparer, *kubelet_plugin.health, &registry);
  }

  AdminServer admin(&registry, [&]() -> Status {
    if (node_server) {
      const NodeServerStatus ns = node_server->GetStatus();
      if (!ns.serving) return Unavailable("kubelet plugin not serving: " + ns.last_error);
    }
    std::lock_guard<std::mutex> lk(mu);
    return last;
  });
  if (auto st = admin.Start(o.admin_address); !st.ok()) {
    HA_LOG(kError, "cannot serve metrics").kv("address", o.admin_address).kv("error", st.message());
    return 1;
  }
  hw::Rescanner rescanner(discovery->get(), o.rescan, [&](const hw::Inventory& inv) {
    if (kubelet_plugin.on_inventory) kubelet_plugin.on_inventory(inv);
    {
      std::lock_guard<std::mutex> lk(mu);
      inventory = inv;
      dirty = true;
    }
    cv.notify_all();
  });
  rescanner.Start();
  if (node_server) {
    if (Status st = node_server->Start(); !st.ok()) {
      HA_LOG(kError, "cannot serve the kubelet").kv("error", st.message());
      rescanner.Stop();
      admin.Stop();
      return 1;
    }
  }
  std::atomic<bool> stop{false};
  std::thread watcher([&] {
    Publisher::WatchSlices(
        watch_client->get(), o.publisher.node_name, &stop,
        [&](const std::string& rv) { return publisher.IsOwnWrite(rv); }, wake);
  });
  HA_LOG(kInfo, "started")
      .kv("node", o.publisher.node_name)
      .kv("admin", o.admin_address)
      .kv("kubelet_plugin", o.kubelet_plugin);

  kube::Backoff backoff(std::chrono::milliseconds(500), std::chrono::seconds(30));
  auto next_resync = std::chrono::steady_clock::now() + o.resync;
  // Claim housekeeping at start, then every --claim-cleanup-seconds.
  auto next_cleanup = std::chrono::steady_clock::now();
  while (!shutdown::Requested()) {
    if (kubelet_plugin.maintain && std::chrono::steady_clock::now() >= next_cleanup) {
      kubelet_plugin.maintain();
      next_cleanup = std::chrono::steady_clock::now() + o.claim_cleanup;
    }
    std::optional<hw::Inventory> inv;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return dirty && inventory.has_value(); });
      if (std::chrono::steady_clock::now() >= next_resync) dirty = true;
      if (!dirty || !inventory) continue;
      dirty = false;
      inv = inventory;
    }
    Status st = publisher.Sync(*inv);
    {
      std::lock_guard<std::mutex> lk(mu);
      last = st;
    }
    next_resync = std::chrono::steady_clock::now() + o.resync;
    if (st.ok()) {
      if (kubelet_plugin.on_published) kubelet_plugin.on_published(*inv, publisher.slice_options());
      backoff.Reset();
      continue;
    }
    auto delay = backoff.Next();
    HA_LOG(kWarn, "publish failed; retrying").kv("error", st.message()).kv("retry_ms", delay.count());
    {
      std::lock_guard<std::mutex> lk(mu);
      dirty = true;
    }
    if (shutdown::WaitFor(delay)) break;
  }
  HA_LOG(kInfo, "shutting down");
  // The kubelet side first: registration socket, in-flight calls, then the DRA socket.
  if (node_server) node_server->Stop();
  stop = true;
  rescanner.Stop();
  watcher.join();
  admin.Stop();
  return 0;
}

}  // namespace hyperaccel::dra
