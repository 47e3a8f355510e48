// The plugin's Prometheus families (names documented in docs/device-plugin.md).
#pragma once

#include "hyperaccel/common/metrics.h"

namespace hyperaccel::device_plugin {

struct PluginMetrics {
  explicit PluginMetrics(metrics::Registry& registry)
      : registrations(registry.AddCounter("hyperaccel_device_plugin_registrations_total",
                                          "Register calls to the kubelet, by result",
                                          {"resource", "result"})),
        registered(registry.AddGauge("hyperaccel_device_plugin_registered",
                                     "1 while registered with the kubelet", {"resource"})),
        streams(registry.AddGauge("hyperaccel_device_plugin_list_and_watch_streams",
                                  "Open ListAndWatch streams", {"resource"})),
        updates(registry.AddCounter("hyperaccel_device_plugin_list_and_watch_updates_total",
                                    "Device lists sent to the kubelet", {"resource"})),
        allocations(registry.AddCounter("hyperaccel_device_plugin_allocations_total",
                                        "Allocate container requests, by result", {"resource", "result"})),
        allocate_seconds(registry.AddHistogram("hyperaccel_device_plugin_allocate_duration_seconds",
                                               "Time to answer Allocate", {"resource"},
                                               metrics::Histogram::LatencyBuckets())),
        preferred_seconds(registry.AddHistogram(
            "hyperaccel_device_plugin_preferred_allocation_duration_seconds",
            "Time to answer GetPreferredAllocation", {"resource"}, metrics::Histogram::LatencyBuckets())),
        preferred_fallbacks(
            registry.AddCounter("hyperaccel_device_plugin_preferred_allocation_fallbacks_total",
                                "GetPreferredAllocation answers not computed by placement", {"resource"})),
        prestart(registry.AddCounter("hyperaccel_device_plugin_prestart_total",
                                     "PreStartContainer hook runs, by result", {"resource", "result"})),
        card_healthy(registry.AddGauge("hyperaccel_device_plugin_card_healthy",
                                       "1 when the card is advertised Healthy, 0 when Unhealthy",
                                       {"resource", "device", "serial"})),
        cdi_writes(registry.AddCounter("hyperaccel_device_plugin_cdi_spec_writes_total",
                                       "CDI spec file writes, by result", {"result"})),
        standby(registry.AddGauge("hyperaccel_device_plugin_standby",
                                  "1 while another instance serves the resource's socket and this one waits",
                                  {"resource"})) {}

  metrics::Counter& registrations;
  metrics::Gauge& registered;
  metrics::Gauge& streams;
  metrics::Counter& updates;
  metrics::Counter& allocations;
  metrics::Histogram& allocate_seconds;
  metrics::Histogram& preferred_seconds;
  metrics::Counter& preferred_fallbacks;
  metrics::Counter& prestart;
  metrics::Gauge& card_healthy;
  metrics::Counter& cdi_writes;
  metrics::Gauge& standby;
};

}  // namespace hyperaccel::device_plugin
