# Tokenizer fuzz targets (included from tests/fuzz/CMakeLists.txt). The replay test always builds;
# the libFuzzer binaries need -DMOESERVE_FUZZ=ON and clang, e.g.
#   build-fuzz/bin/tokenizer_chat_template_fuzz -max_total_time=120 \
#     -dict=tests/fuzz/tokenizer_chat_template.dict <corpus copy> tests/fuzz/tokenizer_corpus/chat_template

moeserve_test(tokenizer_fuzz_replay_test
  SOURCES tokenizer_fuzz_bodies.cc tokenizer_fuzz_replay_test.cc
  DEPS moeserve_tokenizer nlohmann_json::nlohmann_json)

if(MOESERVE_FUZZ)
  # The tokenizer sources are compiled (once, instrumented) into the targets so that libFuzzer
  # sees their coverage.
  file(GLOB _moeserve_tokenizer_sources ${PROJECT_SOURCE_DIR}/server/tokenizer/*.cc
       ${PROJECT_SOURCE_DIR}/server/tokenizer/template/*.cc)
  add_library(tokenizer_fuzz_objects OBJECT tokenizer_fuzz_bodies.cc ${_moeserve_tokenizer_sources})
  target_include_directories(tokenizer_fuzz_objects PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_definitions(tokenizer_fuzz_objects PRIVATE MOESERVE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_compile_options(tokenizer_fuzz_objects PRIVATE ${MOESERVE_FUZZ_FLAGS} -g)
  target_link_libraries(tokenizer_fuzz_objects PUBLIC moeserve_common nlohmann_json::nlohmann_json
                        PkgConfig::PCRE2 ICU::uc ICU::i18n absl::status absl::statusor
                        absl::strings absl::str_format absl::span absl::flat_hash_map
                        absl::flat_hash_set absl::hash absl::synchronization)
  foreach(target encode load chat_template)
    set(name tokenizer_${target}_fuzz)
    add_executable(${name} tokenizer_${target}_fuzz_main.cc)
    target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
    target_compile_definitions(${name} PRIVATE MOESERVE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
    target_compile_options(${name} PRIVATE ${MOESERVE_FUZZ_FLAGS} -g)
    target_link_options(${name} PRIVATE ${MOESERVE_FUZZ_FLAGS})
    target_link_libraries(${name} PRIVATE tokenizer_fuzz_objects)
  endforeach()
endif()
