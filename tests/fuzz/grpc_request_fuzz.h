#ifndef MOESERVE_TESTS_FUZZ_GRPC_REQUEST_FUZZ_H_
#define MOESERVE_TESTS_FUZZ_GRPC_REQUEST_FUZZ_H_

// Body of the gRPC request fuzz target, shared by the libFuzzer entry point
// (grpc_request_fuzz_main.cc) and the replay test.

#include <string_view>

#include "tests/fuzz/request_fuzz.h"

namespace moeserve::fuzz {

// `data` is a moeserve.v1.GenerateRequest in protobuf text format (as the committed seeds are) or,
// when it is not, in the binary wire format; neither: ignored. The request goes the way the gRPC
// service sends it: api::FromProto, then the serving layer's preparation (prompt, validation,
// constraint). Either it is a request the engine can run, or a refusal with InvalidArgument or
// FailedPrecondition naming one of the request's fields (request_fuzz.h), within
// kRequestTimeLimit. Aborts with a message when a promise breaks.
RequestOutcome FuzzGrpcRequest(std::string_view data);

}  // namespace moeserve::fuzz

#endif  // MOESERVE_TESTS_FUZZ_GRPC_REQUEST_FUZZ_H_
