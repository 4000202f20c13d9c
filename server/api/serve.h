#ifndef MOESERVE_SERVER_API_SERVE_H_
#define MOESERVE_SERVER_API_SERVE_H_

// `moeserve serve`: load the engine, start the API server, run until SIGTERM/SIGINT, drain, exit.
// Free of gRPC types so that the CLI can call it without including grpcpp.

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/api/api_server.h"
#include "server/dist/registry.h"
#include "server/engine/engine_config.h"

namespace moeserve::api {

struct ServeOptions {
  EngineConfig engine;
  ApiServerOptions server;  // api_keys is built from api_key / api_key_file
  std::string api_key;
  std::string api_key_file;
  absl::Duration shutdown_timeout = absl::Seconds(30);
  // Rank 0 of a tensor-parallel group (null: one rank); must outlive RunServe.
  DistContext* dist = nullptr;
  // Called once the servers listen (tests; the CLI prints the bound ports).
  std::function<void(const ApiServer& server)> on_ready;
};

// How long the shutdown after the drain's timeout may take (cancelling what is left, closing the
// listeners, stopping the engine) before the process exits anyway: the whole shutdown is bounded
// by shutdown_timeout + kShutdownMargin, whatever the clients do.
inline constexpr absl::Duration kShutdownMargin = absl::Seconds(5);
// The exit status when that bound is reached (the drain was cut short).
inline constexpr int kShutdownOverrunExit = 3;

// Blocks SIGTERM and SIGINT in the calling thread (and so in every thread it starts), raises the
// open-files limit to its hard limit (each HTTP connection is a descriptor), answers 503 on the
// HTTP port while it loads the engine, serves until one of those signals arrives, then drains for
// up to shutdown_timeout and returns OK. During the drain a second SIGTERM or SIGINT exits the
// process at once with 128 + its number (as a shell reports a death by that signal), and a
// shutdown still running after shutdown_timeout + kShutdownMargin exits it with
// kShutdownOverrunExit.
// Errors: loading the model, bad options, ports that cannot be bound.
absl::Status RunServe(ServeOptions options);

}  // namespace moeserve::api

#endif  // MOESERVE_SERVER_API_SERVE_H_
