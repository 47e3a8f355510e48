# ctest script: the daemons linked with their own C++ runtime (hyperaccel_daemon_link_options(...
# STATIC_CXX_RUNTIME) in cmake/DaemonLink.cmake) must not load a shared one, directly or through a
# library: two C++ runtimes in one process are unsafe. Checked with ldd on the built binaries.
#   cmake -DBINARIES="a;b" -P check_cxx_runtime.cmake
foreach(binary IN LISTS BINARIES)
  execute_process(COMMAND ldd ${binary} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ldd ${binary} failed: ${err}")
  endif()
  foreach(lib libstdc++ libgcc_s libyaml-cpp libsimdjson libxrt_coreutil)
    string(FIND "${out}" "${lib}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${binary} is linked with a static C++ runtime but loads ${lib}:\n${out}")
    endif()
  endforeach()
  message(STATUS "${binary}: no shared C++ runtime")
endforeach()
