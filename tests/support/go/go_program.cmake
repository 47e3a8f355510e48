# hyperaccel_go_program(<target> MAIN <main.go> PROTO_DIR <dir> PROTOS <file.proto>... OUTPUT <binary>)
#
# Builds a Go program that speaks the kubelet's gRPC APIs with grpc-go, the kubelet's own gRPC:
# protoc generates Go stubs for PROTOS (from PROTO_DIR) under their go_package import paths (the
# kubelet's, e.g. k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1), and `go build` compiles MAIN
# against them and Debian's grpc-go (/usr/share/gocode), with Go modules off. Nothing is built, and
# HYPERACCEL_GO_FOUND is OFF, when Debian's Go toolchain, grpc-go or the protoc Go plugins are not
# installed (scripts/install-deps installs them; `make demo` does not need them).
find_program(HYPERACCEL_GO go)
find_program(HYPERACCEL_PROTOC_GEN_GO protoc-gen-go)
find_program(HYPERACCEL_PROTOC_GEN_GO_GRPC protoc-gen-go-grpc)
set(HYPERACCEL_GOCODE /usr/share/gocode)
if(HYPERACCEL_GO AND HYPERACCEL_PROTOC_GEN_GO AND HYPERACCEL_PROTOC_GEN_GO_GRPC
   AND EXISTS ${HYPERACCEL_GOCODE}/src/google.golang.org/grpc/clientconn.go)
  set(HYPERACCEL_GO_FOUND ON)
else()
  set(HYPERACCEL_GO_FOUND OFF)
endif()

# One Go build cache for every Go program of every build tree: the programs share grpc-go and
# Protobuf, which take ~50 s of CPU to compile once and ~1 s to reuse. It is Go's own cache
# (`go env GOCACHE`, which honours GOCACHE and XDG_CACHE_HOME; content-addressed and safe for
# concurrent builds), or one under the build tree when Go has none (no HOME).
if(HYPERACCEL_GO_FOUND AND NOT HYPERACCEL_GOCACHE)
  execute_process(COMMAND ${HYPERACCEL_GO} env GOCACHE OUTPUT_VARIABLE _gocache
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _gocache_status)
  if(NOT _gocache_status EQUAL 0 OR NOT IS_ABSOLUTE "${_gocache}")
    set(_gocache "${CMAKE_BINARY_DIR}/go-build-cache")
  endif()
  set(HYPERACCEL_GOCACHE "${_gocache}" CACHE PATH "Go build cache for the Go test programs")
endif()

function(hyperaccel_go_program target)
  cmake_parse_arguments(arg "" "MAIN;PROTO_DIR;OUTPUT" "PROTOS" ${ARGN})
  if(NOT HYPERACCEL_GO_FOUND)
    message(STATUS "${target}: Go, grpc-go or the protoc Go plugins not found; not built")
    return()
  endif()
  set(gopath ${CMAKE_CURRENT_BINARY_DIR}/${target}-gopath)
  set(pkg hyperaccel/${target})
  add_custom_command(
    OUTPUT ${arg_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${gopath}/src/${pkg}
    COMMAND protobuf::protoc --proto_path=${arg_PROTO_DIR}
      --plugin=protoc-gen-go=${HYPERACCEL_PROTOC_GEN_GO} --plugin=protoc-gen-go-grpc=${HYPERACCEL_PROTOC_GEN_GO_GRPC}
      --go_out=${gopath}/src --go-grpc_out=${gopath}/src ${arg_PROTOS}
    COMMAND ${CMAKE_COMMAND} -E copy ${arg_MAIN} ${gopath}/src/${pkg}/main.go
    COMMAND ${CMAKE_COMMAND} -E env GO111MODULE=off GOPATH=${gopath}:${HYPERACCEL_GOCODE}
      GOCACHE=${HYPERACCEL_GOCACHE} GOFLAGS=-trimpath
      ${HYPERACCEL_GO} build -o ${arg_OUTPUT} ${pkg}
    DEPENDS ${arg_MAIN} ${arg_PROTOS} protobuf::protoc
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
    COMMENT "go build: ${target} (grpc-go)"
    VERBATIM)
  add_custom_target(${target} ALL DEPENDS ${arg_OUTPUT})
endfunction()
