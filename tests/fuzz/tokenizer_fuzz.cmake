# Tokenizer fuzz targets (included from tests/fuzz/CMakeLists.txt). The replay test always builds;
# the libFuzzer binaries need -DMOESERVE_FUZZ=ON and clang (scripts/fuzz.sh runs them).

moeserve_test(tokenizer_fuzz_replay_test
  SOURCES tokenizer_fuzz_bodies.cc tokenizer_fuzz_replay_test.cc
  DEPS moeserve_tokenizer nlohmann_json::nlohmann_json)

if(MOESERVE_FUZZ AND MOESERVE_SANITIZE STREQUAL "address")
  # The ASan build (scripts/sanitize.sh) instruments every library already: link the tokenizer.
  add_library(tokenizer_fuzz_objects OBJECT tokenizer_fuzz_bodies.cc)
  target_include_directories(tokenizer_fuzz_objects PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(tokenizer_fuzz_objects PUBLIC moeserve_tokenizer nlohmann_json::nlohmann_json)
elseif(MOESERVE_FUZZ)
  # The tokenizer sources are compiled (once, instrumented) into the targets so that libFuzzer
  # sees their coverage.
  file(GLOB _moeserve_tokenizer_sources ${PROJECT_SOURCE_DIR}/server/tokenizer/*.cc
       ${PROJECT_SOURCE_DIR}/server/tokenizer/template/*.cc)
  add_library(tokenizer_fuzz_objects OBJECT tokenizer_fuzz_bodies.cc ${_moeserve_tokenizer_sources})
  target_include_directories(tokenizer_fuzz_objects PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_definitions(tokenizer_fuzz_objects PRIVATE MOESERVE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_compile_options(tokenizer_fuzz_objects PRIVATE
                         -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -g)
  target_link_libraries(tokenizer_fuzz_objects PUBLIC moeserve_common nlohmann_json::nlohmann_json
                        PkgConfig::PCRE2 ICU::uc ICU::i18n absl::status absl::statusor
                        absl::strings absl::str_format absl::span absl::flat_hash_map
                        absl::flat_hash_set absl::hash absl::synchronization absl::time)
endif()
if(MOESERVE_FUZZ)
  foreach(target encode load chat_template)
    moeserve_fuzz_target(tokenizer_${target}_fuzz
      SOURCES tokenizer_${target}_fuzz_main.cc DEPS tokenizer_fuzz_objects)
  endforeach()
endif()
