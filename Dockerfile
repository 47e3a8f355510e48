# syntax=docker/dockerfile:1
# One image for the three binaries: hyperaccel-device-plugin, hyperaccel-topology-agent,
# hyperaccel-volcano-bridge (the manifests pick one with `command:`).
#
#   docker build -t registry.example.com/hyperaccel/hyperaccel-k8s:0.1.0 .
#
# XRT: the image carries Debian's XRT 2.13 user space (libxrt1). On FPGA hosts the device
# plugin mounts the host's own XRT (/opt/xilinx/xrt, from AMD's packages) into workloads; see
# manifests/README.md "XRT versions" for how the image's XRT relates to the host driver.

# ---- build ------------------------------------------------------------------------------------
FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# The same Debian packages as a developer machine and CI (scripts/install-deps).
COPY scripts/install-deps scripts/install-deps
RUN ./scripts/install-deps && rm -rf /var/lib/apt/lists/*
COPY . .
# Release preset (-O2, warnings as errors); tests and benchmarks are not part of the image.
# The bridge is compiled for x86-64-v3 (AVX2) unless -DHYPERACCEL_BRIDGE_X86_64_V3=OFF.
RUN cmake --preset release -DHYPERACCEL_BUILD_TESTS=OFF -DHYPERACCEL_BUILD_BENCH=OFF \
 && cmake --build --preset release --target hyperaccel-device-plugin hyperaccel-topology-agent hyperaccel-volcano-bridge hyperaccel-dra-driver kubectl-hyperaccel hyperaccel-xrt-probe \
 && mkdir -p /out/bin /out/lib/hyperaccel \
 && for b in hyperaccel-device-plugin hyperaccel-topology-agent hyperaccel-volcano-bridge hyperaccel-dra-driver kubectl-hyperaccel; do \
      strip --strip-unneeded -o /out/bin/$b build-release/bin/$b; \
    done \
 && strip --strip-unneeded -o /out/lib/hyperaccel/hyperaccel-xrt-probe build-release/bin/hyperaccel-xrt-probe

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
# Runtime libraries only (the shared objects the three binaries load, by Debian package). gRPC,
# Protobuf and Abseil are linked statically into the daemons (docs/footprint.md).
#   libxrt1 libuuid1 libboost-filesystem1.74.0   XRT 2.13 user space incl. the sw_emu shim, used only
#                                           by the helper /usr/lib/hyperaccel/hyperaccel-xrt-probe
#                                           (XRT never runs inside a daemon)
#   ocl-icd-libopencl1                      OpenCL ICD loader (the helper's platform probe)
#   libyaml-cpp0.7 libyaml-0-2              config and cabling files (the device plugin and the DRA
#                                           driver link them statically, with libstdc++)
#   libsimdjson14                           JSON parsing (topology agent)
#   libssl3 ca-certificates                 TLS of kubectl-hyperaccel (the daemons link OpenSSL statically)
#                                           and the system CAs when a kubeconfig names none
#   libcpp-httplib0.11                      /healthz and /metrics (the bridge's server is Boost.Beast, header-only)
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libxrt1 libuuid1 libboost-filesystem1.74.0 \
      ocl-icd-libopencl1 \
      libyaml-cpp0.7 libyaml-0-2 libsimdjson14 \
      libssl3 ca-certificates \
      libcpp-httplib0.11 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/hyperaccel-device-plugin /out/bin/hyperaccel-topology-agent /out/bin/hyperaccel-volcano-bridge \
     /out/bin/hyperaccel-dra-driver \
     /out/bin/kubectl-hyperaccel /usr/bin/
# Found by the binaries as <bin>/../lib/hyperaccel/ (xrt/include/hyperaccel/xrt/xrt_probe.h).
COPY --from=build /out/lib/hyperaccel/hyperaccel-xrt-probe /usr/lib/hyperaccel/
# Non-root by default (the bridge runs so); the node DaemonSet sets uid 0 without capabilities
# because the kubelet's sockets are root's (see manifests/base/daemonset.yaml).
USER 65532:65532
ENTRYPOINT ["/usr/bin/hyperaccel-volcano-bridge"]
