# Hot-code ordering for the daemon binaries. docs/footprint.md has the measurements.
#
# A daemon maps its whole binary, and the kernel maps file pages around every page it touches
# (fault-around, 64 KiB), so a daemon's resident code follows how widely the code it runs is spread,
# not how much of it runs: the DRA driver ran 1.8 MB of its 10.5 MB of text, but 7 MiB of it was
# resident. Linking the functions a daemon runs next to each other keeps that to about what runs.
#
# cmake/link-order/<binary>.txt lists, one per line, the (mangled) functions each daemon ran in the
# footprint benchmark's production-like drive (kubelet simulator, API-server emulator, bridge
# requests; emulated and sysfs cards). scripts/gen-link-order records them with valgrind and rewrites
# the files; regenerate after large code changes (ctest footprint.link_order fails when less than
# half of a file's functions still exist in the binary). A function missing from the list only
# lands outside the hot cluster: the order changes where code lies, never what it does.
#
# The order needs ld.lld, 15 or newer so that it also takes -z pack-relative-relocs (the packed
# relocations of cmake/DaemonLink.cmake). Debian 12 ships lld-16 (scripts/install-deps). Without it
# the daemons link as before, with the GNU linker, and configure says so.

option(HYPERACCEL_LINK_ORDER "Link daemon binaries with their hot functions together (needs ld.lld >= 15)" ON)

set(HYPERACCEL_LINK_ORDER_DIR "${CMAKE_CURRENT_LIST_DIR}/link-order")
set(_hyperaccel_link_order_ok OFF)
if(HYPERACCEL_LINK_ORDER AND HYPERACCEL_STATIC_DAEMONS AND NOT HYPERACCEL_SANITIZE AND NOT HYPERACCEL_FUZZ)
  # HYPERACCEL_LLD, HYPERACCEL_LLD_VERSION, HYPERACCEL_LLD_DIR: cmake/FastLink.cmake.
  if(HYPERACCEL_LLD_VERSION GREATER_EQUAL 15)
    set(_hyperaccel_link_order_ok ON)
    message(STATUS "footprint: daemons link with ${HYPERACCEL_LLD} (LLD ${HYPERACCEL_LLD_VERSION}), hot code ordered")
  elseif(HYPERACCEL_LLD)
    message(STATUS "footprint: ${HYPERACCEL_LLD} is older than LLD 15; daemons link without code ordering")
  else()
    message(STATUS "footprint: ld.lld (15 or newer) not found; daemons link without code ordering "
                   "(scripts/install-deps installs lld-16)")
  endif()
endif()

# Called by hyperaccel_daemon_link_options(): orders <target> by cmake/link-order/<output name>.txt
# when that file exists and lld is usable.
function(hyperaccel_link_order target)
  if(NOT _hyperaccel_link_order_ok)
    return()
  endif()
  get_target_property(_name ${target} OUTPUT_NAME)
  if(NOT _name)
    set(_name ${target})
  endif()
  set(_file "${HYPERACCEL_LINK_ORDER_DIR}/${_name}.txt")
  if(NOT EXISTS "${_file}")
    return()
  endif()
  target_link_options(${target} PRIVATE "-B${HYPERACCEL_LLD_DIR}" -fuse-ld=lld
                      "LINKER:--symbol-ordering-file=${_file}" LINKER:--no-warn-symbol-ordering)
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${_file}")
  set_property(TARGET ${target} PROPERTY HYPERACCEL_LINK_ORDER_FILE "${_file}")
endfunction()
