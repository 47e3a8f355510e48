// The hyperaccel-dra-driver daemon: discovery (xrt/, with its health tracker) feeding the
// ResourceSlice publisher, a watch on the node's slices, and the admin server (/metrics,
// /healthz), and with --kubelet-plugin the kubelet side in the same process (NodeServer:
// registration, NodePrepareResources/NodeUnprepareResources, the health stream).
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <string>

#include "hyperaccel/common/status.h"
#include "hyperaccel/dra_driver/publisher.h"
#include "hyperaccel/xrt/discovery.h"

namespace hyperaccel::dra {

struct DriverOptions {
  hw::DiscoveryOptions discovery;
  PublisherOptions publisher;  // node_name is filled from discovery.node_name
  std::string kubeconfig;      // empty: in-cluster, then $KUBECONFIG / ~/.kube/config
  std::string admin_address = ":9402";
  std::chrono::milliseconds rescan{5000};
  // Full resync (one list, no write when nothing changed) even without events.
  std::chrono::seconds resync{600};
  bool once = false;  // publish once and exit (0 when published)

  // The kubelet plugin. Off: the daemon only publishes slices.
  bool kubelet_plugin = false;
  std::string kubelet_dir = "/var/lib/kubelet";
  std::string cdi_dir = "/var/run/cdi";
  std::string checkpoint_dir;  // empty: <kubelet-dir>/plugins/fpga.hyperaccel.ai (a hostPath)
  // What a container gets besides its cards' render nodes (the device plugin's flags).
  bool expose_mgmt = false;
  bool mount_xrt = false;
  std::string xrt_host_dir = "/opt/xilinx/xrt";
  std::string xrt_container_dir = "/opt/xilinx/xrt";
  bool mount_icd = false;
  std::string icd_file = "/etc/OpenCL/vendors/xilinx.icd";
  // How often prepared claims whose ResourceClaim is gone are forgotten.
  std::chrono::seconds claim_cleanup{60};

  // Flag values turned into the fields above by FinishDriverFlags.
  std::string arc_sizes_flag = "2,4,8";
  std::string arcs_flag = "aligned";
  std::string partitionable_flag = "auto";
  std::string taints_flag = "auto";
};

// --kubeconfig, --admin-address, --rescan-ms, --resync-seconds, --once, --arc-sizes, --arcs,
// --partitionable, --device-taints, --kubelet-plugin, --kubelet-dir, --cdi-dir, --checkpoint-dir,
// --expose-mgmt, --mount-xrt, --xrt-host-dir, --xrt-container-dir, --mount-icd, --icd-file,
// --claim-cleanup-seconds (each with an HYPERACCEL_* environment variable and a config key).
void AddDriverFlags(CLI::App& app, DriverOptions& options);

// Parses the string flags into typed options, fills the checkpoint directory's default and
// resolves the node name. Errors name the flag.
Status FinishDriverFlags(DriverOptions& options);

// Parses "2,4,8".
Result<std::vector<int>> ParseArcSizes(const std::string& value);

// Runs the daemon until shutdown (or one publish with `once`). Returns the process exit code.
int RunDriver(DriverOptions options);

// `slices --dry-run`: prints the slices the driver would publish as YAML, without an API server.
// `server_version` ("1.35") picks the counter layout; features come from the tristate flags
// ("auto" = what that version has on by default: partitionable and taints from 1.36).
int DryRunSlices(const DriverOptions& options, const std::string& server_version, std::ostream& out);

}  // namespace hyperaccel::dra
