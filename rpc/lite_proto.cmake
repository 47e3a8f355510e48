# hyperaccel_lite_proto(<target> PACKAGE_PREFIX <prefix> PROTOS <file.proto>...)
#
# A static library <target> with the messages of each .proto generated for Protobuf's lite runtime
# (no gRPC stubs), for the daemons that speak the kubelet's APIs through hyperaccel::rpc. Each file
# is copied at configure time with its "package X;" line renamed to "package <prefix>.X;" and
# "option optimize_for = LITE_RUNTIME;" added, so that its C++ classes (namespace <prefix>::X) do
# not clash with the full classes of the same .proto that tests link beside the daemon code. The
# package does not reach the wire: callers name methods by their original paths, and messages carry
# no type names. Headers: "<stem>_lite.pb.h". The .proto files stay the single source.
function(hyperaccel_lite_proto target)
  cmake_parse_arguments(arg "" "PACKAGE_PREFIX" "PROTOS" ${ARGN})
  set(gen_dir ${CMAKE_CURRENT_BINARY_DIR}/generated-lite)
  file(MAKE_DIRECTORY ${gen_dir})
  set(sources "")
  foreach(proto ${arg_PROTOS})
    get_filename_component(stem ${proto} NAME_WE)
    file(READ ${proto} text)
    string(REGEX MATCH "\npackage ([A-Za-z0-9_.]+);" found "${text}")
    if(NOT found)
      message(FATAL_ERROR "${proto}: no 'package ...;' line to rename")
    endif()
    set(package ${CMAKE_MATCH_1})
    string(REPLACE "${found}" "\npackage ${arg_PACKAGE_PREFIX}.${package};\noption optimize_for = LITE_RUNTIME;"
           text "${text}")
    file(CONFIGURE OUTPUT ${gen_dir}/${stem}_lite.proto CONTENT "${text}" @ONLY)
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${proto})
    add_custom_command(
      OUTPUT ${gen_dir}/${stem}_lite.pb.cc ${gen_dir}/${stem}_lite.pb.h
      COMMAND protobuf::protoc --proto_path=${gen_dir} --cpp_out=${gen_dir} ${gen_dir}/${stem}_lite.proto
      DEPENDS ${gen_dir}/${stem}_lite.proto protobuf::protoc
      COMMENT "protoc: ${stem}_lite.proto"
      VERBATIM)
    list(APPEND sources ${gen_dir}/${stem}_lite.pb.cc ${gen_dir}/${stem}_lite.pb.h)
  endforeach()
  add_library(${target} STATIC ${sources})
  # SYSTEM: generated code is compiled and included without our warning flags.
  target_include_directories(${target} SYSTEM PUBLIC ${gen_dir})
  target_link_libraries(${target} PUBLIC hyperaccel::protobuf_lite)
endfunction()
