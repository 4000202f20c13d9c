# Helpers shared by every CMakeLists.txt in the tree.

# Adds each listed subdirectory that has a CMakeLists.txt, so modules can land independently.
function(moeserve_add_subdirectories)
  foreach(dir IN LISTS ARGN)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/CMakeLists.txt)
      add_subdirectory(${dir})
    endif()
  endforeach()
endfunction()

set(MOESERVE_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-missing-field-initializers)

# moeserve_library(NAME SOURCES ... DEPS ...): a static library rooted at the repository root for
# includes (#include "server/common/status.h").
function(moeserve_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${MOESERVE_WARNINGS}>)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# moeserve_test(NAME [SERIAL] [INTEGRATION] SOURCES ... DEPS ...): a GoogleTest binary registered
# with CTest. Tests find the shared data through MOESERVE_TEST_DATA (default
# ../shared/data beside the source tree).
# SERIAL: tests that measure wall-clock timing run alone, not beside other tests under ctest -j.
# Labels: every test is `unit` (one module and what it links, in one process, no sockets or child
# processes) unless INTEGRATION makes it `integration` (servers and clients over sockets, child
# processes, end-to-end paths across the layers, acceptance against transformers' outputs);
# `scripts/test.sh -L unit` is the fast loop. Tests added with add_test name one of the two in
# their LABELS (tests/check_test_labels.py fails the suite otherwise). gtest_discover_tests passes
# one label only (a list-valued property would be split into property names).
function(moeserve_test name)
  cmake_parse_arguments(ARG "SERIAL;INTEGRATION" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${MOESERVE_WARNINGS})
  target_compile_definitions(${name} PRIVATE MOESERVE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} moeserve_test_util GTest::gmock GTest::gtest_main)
  moeserve_sanitize_test(${name})  # cmake/sanitizers.cmake
  set(properties RUN_SERIAL FALSE)
  if(ARG_SERIAL)
    set(properties RUN_SERIAL TRUE)
  endif()
  if(ARG_INTEGRATION)
    list(APPEND properties LABELS integration)
  else()
    list(APPEND properties LABELS unit)
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60 PROPERTIES ${properties})
endfunction()

# moeserve_fuzz_target(NAME SOURCES ... DEPS ...): a libFuzzer binary <build>/bin/NAME, built when
# -DMOESERVE_FUZZ=ON (clang). NAME ends in _fuzz. scripts/fuzz.sh runs every such binary for a
# bounded time over its corpus tests/fuzz/corpus/<NAME without _fuzz>/ (kept in the repository),
# with the dictionary tests/fuzz/<NAME without _fuzz>.dict when there is one. With MOESERVE_FUZZ
# the whole tree is compiled with coverage instrumentation (CMakeLists.txt), so libFuzzer sees
# the code a target reaches in the libraries too.
function(moeserve_fuzz_target name)
  if(NOT MOESERVE_FUZZ)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  set(flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_definitions(${name} PRIVATE MOESERVE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_compile_options(${name} PRIVATE ${flags} -g)
  target_link_options(${name} PRIVATE ${flags})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  if(NOT TARGET moeserve_fuzz_targets)
    add_custom_target(moeserve_fuzz_targets)
  endif()
  add_dependencies(moeserve_fuzz_targets ${name})
endfunction()
