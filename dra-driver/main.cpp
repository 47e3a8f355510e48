// hyperaccel-dra-driver: publishes the node's Alveo cards and linked arcs as ResourceSlices
// (Dynamic Resource Allocation), so the scheduler picks exact linked cards before binding, and with
// --kubelet-plugin serves the kubelet's DRA plugin API (registration, claim preparation, health).
#include <CLI/CLI.hpp>
#include <iostream>

#include "hyperaccel/common/cli.h"
#include "hyperaccel/common/shutdown.h"
#include "hyperaccel/dra_driver/driver.h"
#include "hyperaccel/xrt/discovery.h"

int main(int argc, char** argv) {
  namespace dra = hyperaccel::dra;
  CLI::App app{
      "hyperaccel-dra-driver: publishes HyperAccel LPU (Alveo U55C) cards and linked arcs as "
      "resource.k8s.io/v1 ResourceSlices; with --kubelet-plugin=true also the kubelet's DRA plugin"};
  app.fallthrough();
  hyperaccel::cli::CommonFlags common;
  hyperaccel::cli::AddCommonFlags(app, common, "HYPERACCEL_");
  dra::DriverOptions options;
  hyperaccel::hw::AddDiscoveryFlags(app, options.discovery);
  dra::AddDriverFlags(app, options);

  bool dry_run = false;
  std::string server_version = "1.35";
  auto* slices = app.add_subcommand("slices", "print the ResourceSlices this node would publish");
  slices->add_flag("--dry-run", dry_run, "print as YAML without contacting an API server (required)");
  slices
      ->add_option("--server-version", server_version,
                   "Kubernetes version to lay the slices out for (1.34: counters with devices)")
      ->capture_default_str();
  if (const int rc = hyperaccel::cli::Parse(app, argc, argv); rc >= 0) return rc;
  if (!hyperaccel::cli::ApplyCommonFlags(common, "dra-driver")) return 2;
  if (auto st = dra::FinishDriverFlags(options); !st.ok()) {
    std::cerr << "error: " << st.message() << "\n";
    return 2;
  }
  if (slices->parsed()) {
    if (!dry_run) {
      std::cerr << "error: `slices` only supports --dry-run (the daemon publishes)\n";
      return 2;
    }
    return dra::DryRunSlices(options, server_version, std::cout);
  }
  hyperaccel::shutdown::InstallSignalHandlers();
  return dra::RunDriver(options);
}
