// hyperaccel-volcano-bridge: the HTTP service Volcano's `extender` scheduler plugin calls.
#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>

#include "hyperaccel/bridge/decide.h"
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
  bridge_options.link_domain_wait_s = bridge::kDefaultLinkDomainWaitS;
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
  app.add_option("--max-body-bytes", server.max_body_bytes,
                 "largest request body accepted (413 above, from Content-Length before reading)")
      ->envname(cli::EnvName(env, "max-body-bytes"))
      ->check(CLI::Range(size_t{1024}, size_t{1} << 34))
      ->capture_default_str();
  app.add_option("--max-inflight-body-bytes", server.max_inflight_body_bytes,
                 "request body bytes read or handled at once, all connections (503 above); keep it at "
                 "least --max-body-bytes plus room for small requests")
      ->envname(cli::EnvName(env, "max-inflight-body-bytes"))
      ->check(CLI::Range(size_t{1024}, size_t{1} << 36))
      ->capture_default_str();
  app.add_option("--max-connections", server.max_connections,
                 "open connections; a new one beyond closes the oldest idle one of the busiest client")
      ->envname(cli::EnvName(env, "max-connections"))
      ->check(CLI::Range(16, 100000))
      ->capture_default_str();
  app.add_option("--max-connections-per-client", server.max_connections_per_client,
                 "open connections from one client address; a new one beyond closes its oldest idle one")
      ->envname(cli::EnvName(env, "max-connections-per-client"))
      ->check(CLI::Range(4, 100000))
      ->capture_default_str();
  app.add_option("--threads", server.threads, "event loop threads at most (one per CPU, at least 2)")
      ->envname(cli::EnvName(env, "threads"))
      ->check(CLI::Range(2, 1024))
      ->capture_default_str();
  app.add_option("--keep-alive-seconds", server.keep_alive_seconds, "idle keep-alive connection timeout")
      ->envname(cli::EnvName(env, "keep-alive-seconds"))
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  int header_timeout_ms = static_cast<int>(server.header_timeout.count());
  app.add_option("--header-timeout-ms", header_timeout_ms,
                 "a request's header must arrive within this of its first byte")
      ->envname(cli::EnvName(env, "header-timeout-ms"))
      ->check(CLI::Range(10, 600000))
      ->capture_default_str();
  int body_timeout_ms = static_cast<int>(server.body_timeout.count());
  app.add_option("--body-timeout-ms", body_timeout_ms,
                 "a request's body must arrive within this of its header, plus its length at "
                 "--body-bytes-per-second")
      ->envname(cli::EnvName(env, "body-timeout-ms"))
      ->check(CLI::Range(10, 600000))
      ->capture_default_str();
  app.add_option("--body-bytes-per-second", server.body_bytes_per_second,
                 "slowest body transfer rate allowed for the time a large body gets")
      ->envname(cli::EnvName(env, "body-bytes-per-second"))
      ->check(CLI::Range(size_t{1024}, size_t{1} << 40))
      ->capture_default_str();
  app.add_option("--topology-cache-bytes", bridge_options.topology_cache_bytes,
                 "decoded node topology annotations kept between calls, in bytes")
      ->envname(cli::EnvName(env, "topology-cache-bytes"))
      ->check(CLI::Range(size_t{0}, size_t{1} << 36))
      ->capture_default_str();
  app.add_option("--link-domain-wait-seconds", bridge_options.link_domain_wait_s,
                 "seconds a gang that fits one link domain may wait for a domain with room for all of "
                 "it before it may start across domains, for gangs without the "
                 "hyperaccel.ai/link-domain-wait annotation, counted from when the cluster has room for "
                 "the gang (0: only annotated gangs wait; needs onSessionOpen, allocate and deallocate "
                 "events)")
      ->envname(cli::EnvName(env, "link-domain-wait-seconds"))
      ->check(CLI::Range(0.0, 30.0 * 24 * 3600))
      ->capture_default_str();
  app.add_option("--tls-cert", server.tls_cert, "PEM certificate: serve HTTPS (needs --tls-key)")
      ->envname(cli::EnvName(env, "tls-cert"))
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", server.tls_key, "PEM private key for --tls-cert")
      ->envname(cli::EnvName(env, "tls-key"))
      ->check(CLI::ExistingFile);
  if (const int rc = hyperaccel::cli::Parse(app, argc, argv); rc >= 0) return rc;
  server.header_timeout = std::chrono::milliseconds(header_timeout_ms);
  server.body_timeout = std::chrono::milliseconds(body_timeout_ms);
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
  HA_LOG(kInfo, "started")
      .kv("resource", bridge_options.resource)
      .kv("weight", bridge_options.weight)
      .kv("link_domain_wait_s", bridge_options.link_domain_wait_s);
  while (!shutdown::WaitFor(std::chrono::seconds(60))) {
  }
  HA_LOG(kInfo, "shutting down: finishing requests in flight");
  http.Stop();
  HA_LOG(kInfo, "stopped");
  return 0;
}
