# How the daemon binaries (device plugin, topology agent, bridge, DRA driver) are linked so that a
# DaemonSet pod stays small. docs/footprint.md has the numbers behind each choice.
#
#   hyperaccel_daemon_link_options(<target>)
#
# opts a binary in. In the default and release presets it then links
#   - gRPC (the unsecure variant: the kubelet's APIs are served and dialled on unix sockets with
#     insecure credentials, so no OpenSSL), Abseil, upb, re2, c-ares and Protobuf from Debian's
#     static archives instead of ~60 shared objects. Only the sections the binary references are
#     linked, and the pages the dynamic loader dirtied relocating each library disappear;
#   - OpenSSL (libssl.a, libcrypto.a) for the binaries that speak TLS (agent, DRA driver, bridge),
#     through hyperaccel::openssl below;
#   - with the daemon memory settings applied before main() (hyperaccel/common/daemon_memory.h:
#     two glibc malloc arenas instead of up to 8 per core);
#   - with --gc-sections (Debian builds these archives with one section per function) and
#     --as-needed, so nothing unreferenced is kept and no unused shared object is loaded.
# Under the sanitizers and the fuzz preset the libraries stay shared (as in the tests) and no linker
# option is added; the memory settings still apply.
#
# Libraries that need gRPC link hyperaccel::grpc instead of gRPC::grpc++: it resolves to the shared
# libraries for every target (tests, benchmarks, tools) and to the static archives for targets that
# called hyperaccel_daemon_link_options().

option(HYPERACCEL_STATIC_DAEMONS
       "Link daemon binaries against Debian's static gRPC/Protobuf/Abseil archives (not under sanitizers)" ON)

set(HYPERACCEL_DAEMON_STATIC_OK OFF)
if(HYPERACCEL_STATIC_DAEMONS AND NOT HYPERACCEL_SANITIZE AND NOT HYPERACCEL_FUZZ)
  set(HYPERACCEL_DAEMON_STATIC_OK ON)
  # One section per function and per object, as Debian builds the archives: --gc-sections then
  # drops our own unreferenced code too, and the hot-code order (cmake/LinkOrder.cmake) can move
  # single functions instead of whole object files.
  add_compile_options(-ffunction-sections -fdata-sections)
endif()

# The archives, in dependency order (a RESCAN group below resolves the rest). Abseil is taken as a
# whole: the linker only pulls the members gRPC and Protobuf reference.
set(_hyperaccel_grpc_archive_names grpc++_unsecure grpc_unsecure upb re2 cares address_sorting gpr protobuf)
set(_hyperaccel_static_grpc_targets "")
if(HYPERACCEL_DAEMON_STATIC_OK)
  foreach(name ${_hyperaccel_grpc_archive_names})
    find_library(HYPERACCEL_STATIC_${name} NAMES lib${name}.a)
    if(NOT HYPERACCEL_STATIC_${name})
      message(STATUS "footprint: lib${name}.a not found; daemons link gRPC dynamically")
      set(HYPERACCEL_DAEMON_STATIC_OK OFF)
      break()
    endif()
  endforeach()
  get_filename_component(_hyperaccel_archive_dir "${HYPERACCEL_STATIC_gpr}" DIRECTORY)
  file(GLOB _hyperaccel_absl_archives LIST_DIRECTORIES false "${_hyperaccel_archive_dir}/libabsl_*.a")
  find_library(HYPERACCEL_STATIC_z NAMES libz.a)
  if(NOT _hyperaccel_absl_archives OR NOT HYPERACCEL_STATIC_z)
    message(STATUS "footprint: Abseil or zlib archives not found; daemons link gRPC dynamically")
    set(HYPERACCEL_DAEMON_STATIC_OK OFF)
  endif()
endif()

if(HYPERACCEL_DAEMON_STATIC_OK)
  set(_paths "")
  foreach(name ${_hyperaccel_grpc_archive_names})
    list(APPEND _paths ${HYPERACCEL_STATIC_${name}})
  endforeach()
  list(REMOVE_DUPLICATES _hyperaccel_absl_archives)
  list(APPEND _paths ${_hyperaccel_absl_archives} ${HYPERACCEL_STATIC_z})
  foreach(path ${_paths})
    get_filename_component(stem ${path} NAME_WE)
    set(t hyperaccel_static_${stem})
    add_library(${t} STATIC IMPORTED)
    set_target_properties(${t} PROPERTIES IMPORTED_LOCATION ${path})
    list(APPEND _hyperaccel_static_grpc_targets ${t})
  endforeach()
  list(JOIN _hyperaccel_static_grpc_targets "," _hyperaccel_static_grpc_group)
endif()

# hyperaccel::grpc — gRPC C++ (insecure credentials only) and Protobuf.
add_library(hyperaccel_grpc INTERFACE)
add_library(hyperaccel::grpc ALIAS hyperaccel_grpc)
target_include_directories(hyperaccel_grpc SYSTEM INTERFACE
  $<TARGET_PROPERTY:gRPC::grpc++_unsecure,INTERFACE_INCLUDE_DIRECTORIES>
  $<TARGET_PROPERTY:protobuf::libprotobuf,INTERFACE_INCLUDE_DIRECTORIES>)
if(HYPERACCEL_DAEMON_STATIC_OK)
  # $<TARGET_PROPERTY:...> without a target name is evaluated on the binary being linked.
  set(_static "$<BOOL:$<TARGET_PROPERTY:HYPERACCEL_STATIC_DEPS>>")
  target_link_libraries(hyperaccel_grpc INTERFACE
    "$<${_static}:$<LINK_GROUP:RESCAN,${_hyperaccel_static_grpc_group}>;Threads::Threads;${CMAKE_DL_LIBS};rt;m>"
    "$<$<NOT:${_static}>:gRPC::grpc++_unsecure;protobuf::libprotobuf>")
else()
  target_link_libraries(hyperaccel_grpc INTERFACE gRPC::grpc++_unsecure protobuf::libprotobuf)
endif()

# hyperaccel::protobuf_lite and hyperaccel::nghttp2 — what the topology agent's pod-resources
# client needs instead of gRPC (it speaks gRPC's wire protocol over HTTP/2 itself): Protobuf's lite
# runtime and nghttp2. For daemons that opted in, Debian's static archives (libprotobuf-lite.a from
# libprotobuf-dev, libnghttp2.a from libnghttp2-dev); for every other target the full shared
# libprotobuf (lite generated code runs on it, and a test that also links the full runtime through
# gRPC must not get two copies of Protobuf's globals) and the shared libnghttp2.
add_library(hyperaccel_protobuf_lite INTERFACE)
add_library(hyperaccel::protobuf_lite ALIAS hyperaccel_protobuf_lite)
add_library(hyperaccel_nghttp2 INTERFACE)
add_library(hyperaccel::nghttp2 ALIAS hyperaccel_nghttp2)
target_include_directories(hyperaccel_protobuf_lite SYSTEM INTERFACE
  $<TARGET_PROPERTY:protobuf::libprotobuf,INTERFACE_INCLUDE_DIRECTORIES>)
target_include_directories(hyperaccel_nghttp2 SYSTEM INTERFACE ${NGHTTP2_INCLUDE_DIRS})
set(_hyperaccel_lite_static OFF)
if(HYPERACCEL_STATIC_DAEMONS AND NOT HYPERACCEL_SANITIZE AND NOT HYPERACCEL_FUZZ)
  find_library(HYPERACCEL_STATIC_protobuf_lite NAMES libprotobuf-lite.a)
  find_library(HYPERACCEL_STATIC_nghttp2 NAMES libnghttp2.a)
  if(HYPERACCEL_STATIC_protobuf_lite AND HYPERACCEL_STATIC_nghttp2)
    set(_hyperaccel_lite_static ON)
  else()
    message(STATUS "footprint: libprotobuf-lite.a or libnghttp2.a not found; the agent links them dynamically")
  endif()
endif()
if(_hyperaccel_lite_static)
  set(_static_lite "$<BOOL:$<TARGET_PROPERTY:HYPERACCEL_STATIC_DEPS>>")
  target_link_libraries(hyperaccel_protobuf_lite INTERFACE
    "$<${_static_lite}:${HYPERACCEL_STATIC_protobuf_lite};Threads::Threads>"
    "$<$<NOT:${_static_lite}>:protobuf::libprotobuf>")
  target_link_libraries(hyperaccel_nghttp2 INTERFACE
    "$<${_static_lite}:${HYPERACCEL_STATIC_nghttp2}>" "$<$<NOT:${_static_lite}>:PkgConfig::NGHTTP2>")
else()
  target_link_libraries(hyperaccel_protobuf_lite INTERFACE protobuf::libprotobuf)
  target_link_libraries(hyperaccel_nghttp2 INTERFACE PkgConfig::NGHTTP2)
endif()

# hyperaccel::openssl — libssl and libcrypto: shared for every target, and for daemons that opted in
# Debian's static archives (libssl.a, libcrypto.a from libssl-dev) unless HYPERACCEL_STATIC_OPENSSL
# is OFF. Only the archive members the binary references are linked. docs/footprint.md has the
# measurements and the cost (an OpenSSL security update needs a rebuild of the image).
option(HYPERACCEL_STATIC_OPENSSL "Link daemon binaries against Debian's static OpenSSL archives" ON)
add_library(hyperaccel_openssl INTERFACE)
add_library(hyperaccel::openssl ALIAS hyperaccel_openssl)
set(_hyperaccel_openssl_static OFF)
if(HYPERACCEL_STATIC_OPENSSL AND HYPERACCEL_STATIC_DAEMONS AND NOT HYPERACCEL_SANITIZE AND NOT HYPERACCEL_FUZZ)
  find_library(HYPERACCEL_STATIC_ssl NAMES libssl.a)
  find_library(HYPERACCEL_STATIC_crypto NAMES libcrypto.a)
  if(HYPERACCEL_STATIC_ssl AND HYPERACCEL_STATIC_crypto)
    set(_hyperaccel_openssl_static ON)
  else()
    message(STATUS "footprint: libssl.a or libcrypto.a not found; daemons link OpenSSL dynamically")
  endif()
endif()
if(_hyperaccel_openssl_static)
  target_include_directories(hyperaccel_openssl SYSTEM INTERFACE ${OPENSSL_INCLUDE_DIR})
  set(_static_ssl "$<BOOL:$<TARGET_PROPERTY:HYPERACCEL_STATIC_DEPS>>")
  target_link_libraries(hyperaccel_openssl INTERFACE
    "$<${_static_ssl}:${HYPERACCEL_STATIC_ssl};${HYPERACCEL_STATIC_crypto};Threads::Threads;${CMAKE_DL_LIBS}>"
    "$<$<NOT:${_static_ssl}>:OpenSSL::SSL;OpenSSL::Crypto>")
else()
  target_link_libraries(hyperaccel_openssl INTERFACE OpenSSL::SSL OpenSSL::Crypto)
endif()

# hyperaccel::yaml_cpp, hyperaccel::libyaml and the C++ runtime. XRT no longer runs inside a daemon
# (it runs in the helper hyperaccel-xrt-probe), so a daemon that loads no other C++ shared object
# can carry its own copy of libstdc++/libgcc and of yaml-cpp (a C++ library: a static libstdc++
# beside a shared yaml-cpp would give the process two C++ runtimes). A daemon opts in with
#   hyperaccel_daemon_link_options(<target> STATIC_CXX_RUNTIME)
# which is only safe when nothing it links is a C++ shared library (ctest footprint.static_cxx_runtime
# checks the linked binaries with ldd: tests/e2e/check_cxx_runtime.cmake). Libraries link
# hyperaccel::yaml_cpp / hyperaccel::libyaml instead of yaml-cpp / PkgConfig::LIBYAML: shared for
# every other target, the archives for those daemons.
option(HYPERACCEL_STATIC_CXX_RUNTIME
       "Link opted-in daemon binaries with static libstdc++/libgcc, yaml-cpp and libyaml (not under sanitizers)" ON)
set(_hyperaccel_cxx_static OFF)
if(HYPERACCEL_STATIC_CXX_RUNTIME AND HYPERACCEL_STATIC_DAEMONS AND NOT HYPERACCEL_SANITIZE AND NOT HYPERACCEL_FUZZ)
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libstdc++.a
                  OUTPUT_VARIABLE _hyperaccel_libstdcxx_a OUTPUT_STRIP_TRAILING_WHITESPACE)
  find_library(HYPERACCEL_STATIC_yaml_cpp NAMES libyaml-cpp.a)
  find_library(HYPERACCEL_STATIC_yaml NAMES libyaml.a)
  if(NOT IS_ABSOLUTE "${_hyperaccel_libstdcxx_a}" OR NOT EXISTS "${_hyperaccel_libstdcxx_a}")
    message(STATUS "footprint: libstdc++.a not found; daemons link the C++ runtime dynamically")
  elseif(NOT HYPERACCEL_STATIC_yaml_cpp OR NOT HYPERACCEL_STATIC_yaml)
    message(STATUS "footprint: libyaml-cpp.a or libyaml.a not found; daemons link the C++ runtime dynamically")
  else()
    set(_hyperaccel_cxx_static ON)
  endif()
endif()
add_library(hyperaccel_yaml_cpp INTERFACE)
add_library(hyperaccel::yaml_cpp ALIAS hyperaccel_yaml_cpp)
add_library(hyperaccel_libyaml INTERFACE)
add_library(hyperaccel::libyaml ALIAS hyperaccel_libyaml)
target_include_directories(hyperaccel_yaml_cpp SYSTEM INTERFACE $<TARGET_PROPERTY:yaml-cpp,INTERFACE_INCLUDE_DIRECTORIES>)
target_include_directories(hyperaccel_libyaml SYSTEM INTERFACE ${LIBYAML_INCLUDE_DIRS})
if(_hyperaccel_cxx_static)
  set(_static_cxx "$<BOOL:$<TARGET_PROPERTY:HYPERACCEL_STATIC_CXX>>")
  target_link_libraries(hyperaccel_yaml_cpp INTERFACE
    "$<${_static_cxx}:${HYPERACCEL_STATIC_yaml_cpp}>" "$<$<NOT:${_static_cxx}>:yaml-cpp>")
  target_link_libraries(hyperaccel_libyaml INTERFACE
    "$<${_static_cxx}:${HYPERACCEL_STATIC_yaml}>" "$<$<NOT:${_static_cxx}>:PkgConfig::LIBYAML>")
else()
  target_link_libraries(hyperaccel_yaml_cpp INTERFACE yaml-cpp)
  target_link_libraries(hyperaccel_libyaml INTERFACE PkgConfig::LIBYAML)
endif()

# Packed relative relocations (DT_RELR: binutils >= 2.38, glibc >= 2.36, both in Debian 12). A
# position-independent daemon carries one 24-byte .rela.dyn entry per pointer in its data (vtables,
# OpenSSL's and our tables); the loader reads them all at start-up, so they stay resident (~0.5 MiB
# in the agent). RELR encodes the same relocations as a bitmap of a few KiB; the binary stays PIE.
option(HYPERACCEL_RELR "Link daemon binaries with packed relative relocations (-z pack-relative-relocs)" ON)
set(HYPERACCEL_LINKER_RELR OFF)
if(HYPERACCEL_RELR AND NOT HYPERACCEL_SANITIZE AND NOT HYPERACCEL_FUZZ)
  include(CheckLinkerFlag)
  check_linker_flag(CXX "LINKER:-z,pack-relative-relocs" HYPERACCEL_LINKER_HAS_RELR)
  set(HYPERACCEL_LINKER_RELR ${HYPERACCEL_LINKER_HAS_RELR})
endif()

function(hyperaccel_daemon_link_options target)
  cmake_parse_arguments(ARG "STATIC_CXX_RUNTIME" "" "" ${ARGN})
  # malloc arenas etc. (common/include/hyperaccel/common/daemon_memory.h), applied before main().
  target_link_libraries(${target} PRIVATE hyperaccel_daemon_init hyperaccel::common)
  if(NOT HYPERACCEL_SANITIZE AND NOT HYPERACCEL_FUZZ)
    target_link_options(${target} PRIVATE LINKER:--gc-sections LINKER:--as-needed LINKER:-O1)
    if(HYPERACCEL_LINKER_RELR)
      target_link_options(${target} PRIVATE LINKER:-z,pack-relative-relocs)
    endif()
  endif()
  if(HYPERACCEL_DAEMON_STATIC_OK OR _hyperaccel_openssl_static OR _hyperaccel_lite_static)
    set_target_properties(${target} PROPERTIES HYPERACCEL_STATIC_DEPS ON)
  endif()
  if(ARG_STATIC_CXX_RUNTIME AND _hyperaccel_cxx_static)
    set_target_properties(${target} PROPERTIES HYPERACCEL_STATIC_CXX ON)
    target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc)
  endif()
  # Hot code together (cmake/LinkOrder.cmake).
  hyperaccel_link_order(${target})
endfunction()
