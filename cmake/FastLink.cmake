# Which linker links the binaries.
#
# LLVM's ld.lld links this project's binaries 4-5 times faster than the GNU linker (a test binary
# with debug info: 3.6 s against 0.7 s; the same under ASan: 6.5 s against 1.7 s), and the tests,
# benchmarks and tools are about 60 binaries in the default tree (about 45 under ASan), linked again
# after every change of a library they use. With HYPERACCEL_FAST_LINK (the default) every binary
# links with ld.lld when it is installed (scripts/install-deps installs lld-16: the daemons'
# hot-code order needs it too, cmake/LinkOrder.cmake); without it, with the GNU linker as before.
# What the binaries do does not depend on the choice: same objects, libraries and options.
#
# Sets HYPERACCEL_LLD (the program), HYPERACCEL_LLD_VERSION (its major version, 0 when unknown)
# and HYPERACCEL_LLD_DIR: a directory holding it as "ld.lld", for `-B<dir> -fuse-ld=lld` (GCC runs
# the linker it finds under that name in a -B directory; Debian's lld-16 installs only
# ld.lld-16 on the PATH).

option(HYPERACCEL_FAST_LINK "Link every binary with ld.lld when it is installed (faster links than GNU ld)" ON)

find_program(HYPERACCEL_LLD NAMES ld.lld-16 ld.lld-15 ld.lld
             PATHS /usr/lib/llvm-16/bin /usr/lib/llvm-15/bin NO_DEFAULT_PATH)
find_program(HYPERACCEL_LLD NAMES ld.lld-16 ld.lld-15 ld.lld)
set(HYPERACCEL_LLD_VERSION 0)
set(HYPERACCEL_LLD_DIR "")
if(HYPERACCEL_LLD)
  execute_process(COMMAND ${HYPERACCEL_LLD} --version OUTPUT_VARIABLE _lld_version ERROR_QUIET)
  if(_lld_version MATCHES "LLD ([0-9]+)")
    set(HYPERACCEL_LLD_VERSION ${CMAKE_MATCH_1})
  endif()
  set(HYPERACCEL_LLD_DIR "${CMAKE_BINARY_DIR}/lld")
  file(MAKE_DIRECTORY "${HYPERACCEL_LLD_DIR}")
  file(CREATE_LINK "${HYPERACCEL_LLD}" "${HYPERACCEL_LLD_DIR}/ld.lld" SYMBOLIC)
endif()

# LLD 15 or newer: older ones ignore the daemons' -z pack-relative-relocs (cmake/DaemonLink.cmake,
# whose check runs the default linker) with a warning only.
if(HYPERACCEL_FAST_LINK)
  if(HYPERACCEL_LLD_VERSION GREATER_EQUAL 15)
    add_link_options("-B${HYPERACCEL_LLD_DIR}" -fuse-ld=lld)
    message(STATUS "link: every binary links with ${HYPERACCEL_LLD} (LLD ${HYPERACCEL_LLD_VERSION})")
  else()
    message(STATUS "link: ld.lld 15 or newer not found; binaries link with the default linker "
                   "(scripts/install-deps installs lld-16)")
  endif()
endif()
