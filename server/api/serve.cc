#include "server/api/serve.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "server/api/loading_responder.h"
#include "server/common/logging.h"
#include "server/engine/engine.h"

namespace moeserve::api {

absl::Status RunServe(ServeOptions options) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &signals, &previous);
  struct RestoreMask {
    sigset_t mask;
    ~RestoreMask() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore{previous};

  // Thousands of concurrent HTTP streams need as many descriptors; the soft limit is often 1024.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  absl::StatusOr<serving::ApiKeys> keys = serving::ApiKeys::Load(options.api_key, options.api_key_file);
  if (!keys.ok()) return keys.status();
  options.server.api_keys = std::move(*keys);
  if (options.server.model_id.empty()) {
    options.server.model_id =
        std::filesystem::path(options.engine.model_dir).lexically_normal().filename().string();
    if (options.server.model_id.empty()) {
      options.server.model_id = std::filesystem::path(options.engine.model_dir)
                                    .lexically_normal()
                                    .parent_path()
                                    .filename()
                                    .string();
    }
  }

  // Probes get 503 while the model loads (the port is taken now, so a clash fails fast).
  absl::StatusOr<std::unique_ptr<LoadingResponder>> loading = LoadingResponder::Start(options.server);
  if (!loading.ok()) return loading.status();
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(options.engine, options.dist);
  if (!engine.ok()) return engine.status();
  (*engine)->Start();
  if (*loading != nullptr) (*loading)->Stop();
  absl::StatusOr<std::unique_ptr<ApiServer>> server =
      ApiServer::Start(options.server, engine->get());
  if (!server.ok()) {
    (*engine)->Stop();
    return server.status();
  }
  if (options.on_ready) options.on_ready(**server);

  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  MS_LOG(WARNING) << "received " << (signal == SIGTERM ? "SIGTERM" : "SIGINT")
                  << "; draining for up to " << absl::FormatDuration(options.shutdown_timeout);
  (*server)->Shutdown(options.shutdown_timeout);
  server->reset();
  (*engine)->Stop();
  MS_LOG(INFO) << "stopped";
  return absl::OkStatus();
}

}  // namespace moeserve::api
