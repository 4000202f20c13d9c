# Sanitizer builds (scripts/sanitize.sh makes them, each in its own build directory):
#   -DMOESERVE_SANITIZE=address  AddressSanitizer (+ LeakSanitizer) and UndefinedBehaviorSanitizer;
#                                every report is fatal (-fno-sanitize-recover=all), so it fails
#                                the test that triggered it.
#   -DMOESERVE_SANITIZE=thread   ThreadSanitizer. The system's abseil is not instrumented, so test
#                                binaries link tests/tsan_absl_shim.cc (see there and
#                                moeserve_test), and tests/tsan.supp names what remains.
# The whole tree is instrumented (libraries, binaries, tests). Clang only, CUDA off: the
# sanitizers cover host code, and no kernel can run where CI runs.
set(MOESERVE_SANITIZE "" CACHE STRING "Instrument the whole build: address (ASan+UBSan) or thread (TSan)")
set_property(CACHE MOESERVE_SANITIZE PROPERTY STRINGS "" address thread)

set(MOESERVE_SANITIZER_FLAGS "")
if(MOESERVE_SANITIZE)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MOESERVE_SANITIZE needs clang (configure with CC=clang CXX=clang++)")
  endif()
  if(MOESERVE_CUDA_ENABLED)
    message(FATAL_ERROR "MOESERVE_SANITIZE needs -DMOESERVE_CUDA=OFF (host code only)")
  endif()
  if(MOESERVE_SANITIZE STREQUAL "address")
    set(MOESERVE_SANITIZER_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all)
  elseif(MOESERVE_SANITIZE STREQUAL "thread")
    if(MOESERVE_FUZZ)
      message(FATAL_ERROR "MOESERVE_FUZZ goes with MOESERVE_SANITIZE=address, not thread")
    endif()
    set(MOESERVE_SANITIZER_FLAGS -fsanitize=thread)
  else()
    message(FATAL_ERROR "MOESERVE_SANITIZE must be address or thread, not '${MOESERVE_SANITIZE}'")
  endif()
  list(APPEND MOESERVE_SANITIZER_FLAGS -fno-omit-frame-pointer)
  add_compile_options(${MOESERVE_SANITIZER_FLAGS})
  add_link_options(${MOESERVE_SANITIZER_FLAGS})
  message(STATUS "moeserve: sanitizer build (${MOESERVE_SANITIZE}): ${MOESERVE_SANITIZER_FLAGS}")
endif()

# What a test binary needs in a sanitizer build (moeserve_test calls it). TSan: the abseil shim,
# exported so that it interposes on the system library (tests/sanitizers/tsan_absl_shim.cc).
function(moeserve_sanitize_test name)
  if(MOESERVE_SANITIZE STREQUAL "thread")
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/sanitizers/tsan_absl_shim.cc)
    set_target_properties(${name} PROPERTIES ENABLE_EXPORTS ON)
    target_link_libraries(${name} PRIVATE absl::synchronization absl::time ${CMAKE_DL_LIBS})
  endif()
endfunction()
