#ifndef MOESERVE_TESTS_FUZZ_HTTP_REQUEST_FUZZ_H_
#define MOESERVE_TESTS_FUZZ_HTTP_REQUEST_FUZZ_H_

// Body of the HTTP request fuzz target, shared by the libFuzzer entry point
// (http_request_fuzz_main.cc) and the replay test.

#include <string_view>

#include "tests/fuzz/request_fuzz.h"

namespace moeserve::fuzz {

// `data` is the bytes a client sends: one HTTP/1.1 request. It is read as a connection reads it
// (http_internal::ReadHttpRequest: Beast's parser with the server's header and body limits, made
// small here so that inputs reach them); a failed read must get a 400, 413 or 431. A request's
// body then goes the way the OpenAI router sends it for its path (POST /v1/chat/completions,
// /v1/completions, /tokenize; the path alone picks, whatever the method): the body parsed, the
// OpenAI parameters read into serving requests, and each prepared by the serving layer (prompt,
// validation, constraint). Each outcome is a request the engine can run or a refusal naming a
// field the body has (or a required one) (request_fuzz.h), within kRequestTimeLimit. Routing,
// authentication and the work queue (OpenAiRouter::Handle) are not reached: they need a Frontend
// over an Engine. Aborts with a message when a promise breaks.
RequestOutcome FuzzHttpRequest(std::string_view data);

}  // namespace moeserve::fuzz

#endif  // MOESERVE_TESTS_FUZZ_HTTP_REQUEST_FUZZ_H_
