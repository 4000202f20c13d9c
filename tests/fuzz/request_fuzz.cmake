# Request fuzz targets (included from tests/fuzz/CMakeLists.txt), both ending in the serving layer's
# preparation of a request (prompt, validation, constraint) over the qwen3 tokenizer and chat
# template of the shared data: a gRPC GenerateRequest through api::FromProto, and an HTTP request
# read as a connection reads it with its OpenAI body converted. The replay tests always build; the
# libFuzzer binaries need -DMOESERVE_FUZZ=ON and clang (scripts/fuzz.sh runs them).

moeserve_test(grpc_request_fuzz_replay_test
  SOURCES grpc_request_fuzz_body.cc request_fuzz.cc grpc_request_fuzz_replay_test.cc
  DEPS moeserve_api moeserve_serving moeserve_proto)
moeserve_test(http_request_fuzz_replay_test
  SOURCES http_request_fuzz_body.cc request_fuzz.cc http_request_fuzz_replay_test.cc
  DEPS moeserve_openai moeserve_http moeserve_serving)

if(MOESERVE_FUZZ AND MOESERVE_SANITIZE STREQUAL "address")
  # The ASan build (scripts/sanitize.sh) instruments every library already: link them, as the
  # replay tests do, rather than compile their sources again.
  add_library(request_fuzz_objects OBJECT request_fuzz.cc)
  target_include_directories(request_fuzz_objects PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(request_fuzz_objects PUBLIC moeserve_serving)
  moeserve_fuzz_target(grpc_request_fuzz
    SOURCES grpc_request_fuzz_main.cc grpc_request_fuzz_body.cc
    DEPS request_fuzz_objects moeserve_api moeserve_serving moeserve_proto)
  moeserve_fuzz_target(http_request_fuzz
    SOURCES http_request_fuzz_main.cc http_request_fuzz_body.cc
    DEPS request_fuzz_objects moeserve_openai moeserve_http moeserve_serving)
elseif(MOESERVE_FUZZ)
  # The code under test is compiled (instrumented, with the sanitizers) into the targets; the
  # tokenizer and the constraint compiler, which have targets of their own, are linked.
  set(_moeserve_request_fuzz_sources
      request_fuzz.cc
      ${PROJECT_SOURCE_DIR}/server/sampling/sampling_params.cc
      ${PROJECT_SOURCE_DIR}/server/serving/errors.cc
      ${PROJECT_SOURCE_DIR}/server/serving/prompt_builder.cc
      ${PROJECT_SOURCE_DIR}/server/serving/request_validator.cc
      ${PROJECT_SOURCE_DIR}/server/serving/structured_output.cc)
  set(_moeserve_request_fuzz_deps
      moeserve_structured moeserve_tokenizer moeserve_common nlohmann_json::nlohmann_json absl::status
      absl::statusor absl::strings absl::str_format absl::span absl::synchronization absl::time)
  moeserve_fuzz_target(grpc_request_fuzz
    SOURCES grpc_request_fuzz_main.cc grpc_request_fuzz_body.cc ${_moeserve_request_fuzz_sources}
            ${PROJECT_SOURCE_DIR}/server/api/request_convert.cc
    DEPS moeserve_proto ${_moeserve_request_fuzz_deps})
  moeserve_fuzz_target(http_request_fuzz
    SOURCES http_request_fuzz_main.cc http_request_fuzz_body.cc ${_moeserve_request_fuzz_sources}
            ${PROJECT_SOURCE_DIR}/server/api/http/http_request_reader.cc
            ${PROJECT_SOURCE_DIR}/server/api/openai/generation_request.cc
            ${PROJECT_SOURCE_DIR}/server/api/openai/openai_params.cc
            ${PROJECT_SOURCE_DIR}/server/api/openai/response_format.cc
    DEPS Boost::headers ${_moeserve_request_fuzz_deps})
endif()
