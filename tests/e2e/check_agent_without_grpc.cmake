# ctest script: the topology agent speaks the kubelet's pod-resources API with its own HTTP/2
# client (nghttp2 + Protobuf lite, rpc/src/grpc_unary.cpp), so its binary must hold no
# gRPC runtime and no full Protobuf runtime, statically or shared (docs/footprint.md has what they
# cost). Checked with ldd and nm on the built binary.
#   cmake -DBINARY=path -P check_agent_without_grpc.cmake
execute_process(COMMAND ldd ${BINARY} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ldd ${BINARY} failed: ${err}")
endif()
foreach(lib libgrpc libgpr libprotobuf libabsl libupb)
  string(FIND "${out}" "${lib}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "${BINARY} loads ${lib}:\n${out}")
  endif()
endforeach()
execute_process(COMMAND nm --defined-only ${BINARY} OUTPUT_VARIABLE syms ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm ${BINARY} failed: ${err}")
endif()
# gRPC core and C++ (grpc_core::, grpc::), and the full Protobuf's Message (lite has MessageLite only).
foreach(pattern "_ZN9grpc_core" "_ZN4grpc" "_ZNK4grpc" "_ZN6google8protobuf7Message" "_ZNK6google8protobuf7Message")
  string(FIND "${syms}" "${pattern}" at)
  if(NOT at EQUAL -1)
    string(SUBSTRING "${syms}" ${at} 120 around)
    message(FATAL_ERROR "${BINARY} contains gRPC or full Protobuf code (${pattern}...): ${around}")
  endif()
endforeach()
message(STATUS "${BINARY}: no gRPC, no full Protobuf")
