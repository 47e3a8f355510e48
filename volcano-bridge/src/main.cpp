// hyperaccel-volcano-bridge: the HTTP service Volcano's `extender` scheduler plugin calls.
#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>

#include "hyperaccel/bridge/server.h"
#include "hyperaccel/bridge/service.h"
#include "hyperaccel/common/cli.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/shutdown.h"
#include "hyperaccel/placement/names.h"

int main(int argc, char** argv) {
  using namespace hyperaccel;
  const std::string env = "HYPERACCEL_BRIDGE_";
  CLI::App app{
      "hyperaccel-volcano-bridge: Volcano extender for HyperAccel FPGA cards.\n"
      "Serves POST "
      "<prefix>/{onSessionOpen,onSessionClose,predicate,prioritize,allocate,deallocate,preemptable,"
      "reclaimable}, GET /healthz and GET /metrics."};
  cli::CommonFlags common;
  cli::AddCommonFlags(app, common, env);
  bridge::ServerOptions server;
  bridge::BridgeOptions bridge_options;
  bridge_options.resource = names::kDefaultResource;
  const cli::FlagGroup group(app, "Volcano bridge");
  app.add_option("--listen", server.listen, "host:port to serve on")
      ->envname(cli::EnvName(env, "listen"))
      ->capture_default_str();
  app.add_option("--path-prefix", server.path_prefix, "path before /<verb> (\"\" serves /predicate)")
      ->envname(cli::EnvName(env, "path-prefix"))
      ->capture_default_str();
  app.add_option("--weight", bridge_options.weight, "prioritize scores are 0..100 x weight")
      ->envname(cli::EnvName(env, "weight"))
      ->check(CLI::Range(0.0, 1.0e6))
      ->capture_default_str();
  app.add_option("--resource-name", bridge_options.resource, "extended resource that counts cards")
      ->envname(cli::EnvName(env, "resource-name"))
      ->capture_default_str();
  app.add_option("--max-body-bytes", server.max_body_bytes, "largest request body accepted (413 above)")
      ->envname(cli::EnvName(env, "max-body-bytes"))
      ->check(CLI::Range(size_t{1024}, size_t{1} << 34))
      ->capture_default_str();
  app.add_option("--threads", server.threads, "connections served at once (more wait in the listen queue)")
      ->envname(cli::EnvName(env, "threads"))
      ->check(CLI::Range(2, 1024))
      ->capture_default_str();
  app.add_option("--keep-alive-seconds", server.keep_alive_seconds, "idle keep-alive connection timeout")
      ->envname(cli::EnvName(env, "keep-alive-seconds"))
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--tls-cert", server.tls_cert, "PEM certificate: serve HTTPS (needs --tls-key)")
      ->envname(cli::EnvName(env, "tls-cert"))
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", server.tls_key, "PEM private key for --tls-cert")
      ->envname(cli::EnvName(env, "tls-key"))
      ->check(CLI::ExistingFile);
  if (const int rc = hyperaccel::cli::Parse(app, argc, argv); rc >= 0) return rc;
#if defined(HYPERACCEL_BRIDGE_NEEDS_AVX2)
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("bmi2") ||
      !__builtin_cpu_supports("pclmul")) {
    std::cerr << "this build needs an x86-64-v3 CPU (AVX2, BMI2, PCLMUL); rebuild with "
                 "-DHYPERACCEL_BRIDGE_X86_64_V3=OFF\n";
    return 2;
  }
#endif
  if (!cli::ApplyCommonFlags(common, "volcano-bridge")) return 2;

  shutdown::InstallSignalHandlers();
  metrics::Registry registry;
  metrics::AddProcessMetrics(registry);
  bridge::Bridge service(bridge_options, &registry);
  bridge::HttpServer http(&service, &registry, server);
  if (Status s = http.Start(); !s.ok()) {
    HA_LOG(kError, "cannot start").kv("error", s.message());
    return 1;
  }
  HA_LOG(kInfo, "started").kv("resource", bridge_options.resource).kv("weight", bridge_options.weight);
  while (!shutdown::WaitFor(std::chrono::seconds(60))) {
  }
  HA_LOG(kInfo, "shutting down: finishing requests in flight");
  http.Stop();
  HA_LOG(kInfo, "stopped");
  return 0;
}
