# Every dependency comes from a Debian 12 package; scripts/install-deps installs them all.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)

find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
# nghttp2: HTTP/2 framing for hyperaccel::rpc (rpc/), which speaks gRPC's wire protocol itself so
# that the daemons do not link gRPC's runtime (docs/footprint.md, docs/rpc.md).
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)

find_package(simdjson CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
# libyaml: the fast event parser of the cabling file (yaml-cpp re-reads what it rejects).
pkg_check_modules(LIBYAML REQUIRED IMPORTED_TARGET yaml-0.1)
find_package(CLI11 CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
# Boost.Beast and Asio (header-only in 1.74): the volcano bridge's HTTP server, the admin endpoint and
# the Kubernetes REST client (kube/).
find_package(Boost 1.74 REQUIRED)

# XRT: only libxrt_coreutil (+ libuuid), never a shim (a linked shim pins it; see docs/discovery.md).
find_library(XRT_COREUTIL_LIB NAMES xrt_coreutil REQUIRED)
find_library(UUID_LIB NAMES uuid REQUIRED)
find_path(XRT_INCLUDE_DIR NAMES xrt/xrt_device.h PATHS /usr/include/xrt REQUIRED)
add_library(hyperaccel_ext_xrt INTERFACE)
target_include_directories(hyperaccel_ext_xrt SYSTEM INTERFACE ${XRT_INCLUDE_DIR})
target_link_libraries(hyperaccel_ext_xrt INTERFACE ${XRT_COREUTIL_LIB} ${UUID_LIB} ${CMAKE_DL_LIBS})
add_library(hyperaccel::ext_xrt ALIAS hyperaccel_ext_xrt)

find_package(OpenCL REQUIRED)

if(HYPERACCEL_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(HYPERACCEL_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# Where the team's shared material (Volcano fixtures, CRD schemas) sits: beside the checkout.
set(HYPERACCEL_SHARED_DIR "${PROJECT_SOURCE_DIR}/../shared" CACHE PATH "shared/ folder with fixtures and reference schemas")
