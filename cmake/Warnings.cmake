# Warning flags applied to every target of this project (not to generated code).
set(HYPERACCEL_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
    -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 reports false -Wrestrict positives inside libstdc++ for `"literal" + std::string` at
  # -O3 (GCC bug 105329); the code is correct.
  list(APPEND HYPERACCEL_WARNINGS -Wno-restrict)
endif()
if(HYPERACCEL_WERROR)
  list(APPEND HYPERACCEL_WARNINGS -Werror)
endif()

# hyperaccel_target_defaults(<target>): warnings and include layout for our own targets.
function(hyperaccel_target_defaults target)
  target_compile_options(${target} PRIVATE ${HYPERACCEL_WARNINGS})
endfunction()

# hyperaccel_add_test(<name> SOURCES ... LIBS ...): a GoogleTest binary registered with ctest.
function(hyperaccel_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  hyperaccel_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  include(GoogleTest)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/support/test_env.cpp)
  target_compile_definitions(${name} PRIVATE HYPERACCEL_TEST_SHARED_DIR="${HYPERACCEL_SHARED_DIR}"
    HYPERACCEL_TEST_SOURCE_DIR_PATH="${PROJECT_SOURCE_DIR}" HYPERACCEL_TEST_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()

# hyperaccel_add_fuzzer(<name> SOURCES ... LIBS ...): a libFuzzer target (clang only) that
# ctest runs for a bounded time on its seed corpus.
function(hyperaccel_add_fuzzer name)
  cmake_parse_arguments(ARG "" "CORPUS;SECONDS" "SOURCES;LIBS" ${ARGN})
  if(NOT HYPERACCEL_FUZZ)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  if(NOT TARGET fuzzers)
    add_custom_target(fuzzers)
  endif()
  add_dependencies(fuzzers ${name})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  if(NOT ARG_SECONDS)
    set(ARG_SECONDS 20)
  endif()
  set(corpus_args "")
  if(ARG_CORPUS)
    set(work ${CMAKE_BINARY_DIR}/fuzz/${name}.corpus)
    file(MAKE_DIRECTORY ${work})
    set(corpus_args ${work} ${ARG_CORPUS})
  endif()
  add_test(NAME fuzz.${name}
    COMMAND ${name} -max_total_time=${ARG_SECONDS} -rss_limit_mb=2048 -print_final_stats=1 ${corpus_args})
  set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT 300)
endfunction()
