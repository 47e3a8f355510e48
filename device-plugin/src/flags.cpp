#include <CLI/CLI.hpp>

#include "hyperaccel/common/cli.h"
#include "hyperaccel/device_plugin/plugin.h"

namespace hyperaccel::device_plugin {
namespace {

constexpr const char* kEnvPrefix = "HYPERACCEL_";

std::string Env(const std::string& flag) { return cli::EnvName(kEnvPrefix, flag); }

}  // namespace

void AddPluginFlags(CLI::App& app, PluginOptions& o) {
  const cli::FlagGroup group(app, "Device plugin");
  app.add_option("--kubelet-dir", o.kubelet_dir, "Directory with kubelet.sock; our socket goes there too")
      ->envname(Env("kubelet-dir"))
      ->capture_default_str();
  app.add_option("--socket-name", o.socket_name, "Our socket file name (single-name mode)")
      ->envname(Env("socket-name"))
      ->capture_default_str();
  app.add_option("--resource-name", o.resource_name, "Extended resource name the cards are advertised as")
      ->envname(Env("resource-name"))
      ->capture_default_str();
  app.add_option_function<std::string>(
         "--naming",
         [&o](const std::string& v) {
           o.naming = v == "per-shell" ? NamingMode::kPerShell : NamingMode::kSingle;
         },
         "single: every card as --resource-name; per-shell: one resource per shell, named "
         "<per-shell-domain>/<VBNV>-<timestamp> like the AMD/Xilinx plugin")
      ->envname(Env("naming"))
      ->check(CLI::IsMember({"single", "per-shell"}))
      ->default_str("single");
  app.add_option("--per-shell-domain", o.per_shell_domain, "Domain of per-shell resource names")
      ->envname(Env("per-shell-domain"))
      ->capture_default_str();
  app.add_option("--preferred-allocation", o.preferred_allocation,
                 "Advertise GetPreferredAllocation (linked, ring-contiguous, NUMA-local cards)")
      ->envname(Env("preferred-allocation"))
      ->capture_default_str();
  app.add_flag("--expose-mgmt", o.allocate.expose_mgmt,
               "Also give containers the management node (/dev/xclmgmt*); it can reflash the card")
      ->envname(Env("expose-mgmt"));
  app.add_flag("--mount-xrt", o.allocate.mount_xrt,
               "Mount the host XRT directory read-only and set XILINX_XRT")
      ->envname(Env("mount-xrt"));
  app.add_option("--xrt-host-dir", o.allocate.xrt_host_dir, "Host XRT directory")
      ->envname(Env("xrt-host-dir"))
      ->capture_default_str();
  app.add_option("--xrt-container-dir", o.allocate.xrt_container_dir,
                 "Where the XRT directory appears in containers")
      ->envname(Env("xrt-container-dir"))
      ->capture_default_str();
  app.add_flag("--mount-icd", o.allocate.mount_icd, "Mount the OpenCL ICD file read-only")
      ->envname(Env("mount-icd"));
  app.add_option("--icd-file", o.allocate.icd_file, "OpenCL ICD file of the Xilinx platform")
      ->envname(Env("icd-file"))
      ->capture_default_str();
  app.add_flag("--cdi", o.allocate.cdi, "Write a CDI spec for every card and return CDI device names")
      ->envname(Env("cdi"));
  app.add_option("--cdi-dir", o.allocate.cdi_dir, "Directory for the generated CDI spec")
      ->envname(Env("cdi-dir"))
      ->capture_default_str();
  app.add_option("--cdi-kind", o.allocate.cdi_kind, "CDI kind (vendor/class) of our devices")
      ->envname(Env("cdi-kind"))
      ->capture_default_str();
  app.add_option("--prestart-command", o.prestart_command,
                 "Shell command run before every container start with the device IDs as arguments "
                 "(e.g. a reset); empty = no PreStartContainer")
      ->envname(Env("prestart-command"));
  app.add_option_function<double>(
         "--prestart-timeout",
         [&o](double s) { o.prestart_timeout = std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); },
         "Seconds the PreStartContainer command may take (the kubelet waits 30)")
      ->envname(Env("prestart-timeout"))
      ->check(CLI::Range(0.1, 29.0))
      ->default_str("25");
  app.add_option_function<int>(
         "--kubelet-poll-ms", [&o](int ms) { o.poll_interval = std::chrono::milliseconds(ms); },
         "Interval of the stat() check of kubelet.sock and our socket (inotify usually reacts first)")
      ->envname(Env("kubelet-poll-ms"))
      ->check(CLI::Range(10, 60000))
      ->default_str("1000");
}

Status ValidateOptions(const PluginOptions& o) {
  if (Status st = ValidateResourceName(o.resource_name); !st.ok()) return st;
  if (o.naming == NamingMode::kPerShell) {
    if (Status st = ValidateResourceName(o.per_shell_domain + "/x"); !st.ok()) {
      return InvalidArgument("--per-shell-domain '" + o.per_shell_domain + "' is not a DNS subdomain");
    }
  }
  if (o.socket_name.empty() || o.socket_name.find('/') != std::string::npos) {
    return InvalidArgument("--socket-name must be a plain file name, got '" + o.socket_name + "'");
  }
  if (o.socket_name == kKubeletSocketName) return InvalidArgument("--socket-name must not be kubelet.sock");
  // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
  const size_t longest = o.kubelet_dir.size() + 1 + std::max<size_t>(o.socket_name.size(), 80);
  if (o.kubelet_dir.size() + 1 + o.socket_name.size() > 107) {
    return InvalidArgument("socket path " + o.kubelet_dir + "/" + o.socket_name +
                           " is longer than 107 bytes");
  }
  if (o.naming == NamingMode::kPerShell && longest > 107) {
    return InvalidArgument("--kubelet-dir is too long for per-shell socket names (107-byte limit)");
  }
  if (o.allocate.cdi) {
    const std::string& kind = o.allocate.cdi_kind;
    size_t slash = kind.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == kind.size() ||
        !ValidateResourceName(kind).ok()) {
      return InvalidArgument("--cdi-kind must look like vendor.com/class, got '" + kind + "'");
    }
  }
  if (o.allocate.mount_xrt && (o.allocate.xrt_host_dir.empty() || o.allocate.xrt_container_dir.empty())) {
    return InvalidArgument("--mount-xrt needs --xrt-host-dir and --xrt-container-dir");
  }
  return Status::Ok();
}

}  // namespace hyperaccel::device_plugin
