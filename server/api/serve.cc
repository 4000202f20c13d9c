#include "server/api/serve.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/api/loading_responder.h"
#include "server/common/logging.h"
#include "server/engine/engine.h"

namespace moeserve::api {
namespace {

const char* SignalName(int signal) { return signal == SIGTERM ? "SIGTERM" : "SIGINT"; }

// Watches a drain from its own thread (which inherits the blocked SIGTERM/SIGINT and takes them
// with sigtimedwait): another signal exits the process at once with 128 + its number, and a drain
// still running at `deadline` exits it with kShutdownOverrunExit. Destroying it (the drain is
// over) stops the watch. Not copyable; the owner's thread destroys it.
class DrainWatch {
 public:
  DrainWatch(const sigset_t& signals, absl::Time deadline)
      : thread_([this, signals, deadline] { Watch(signals, deadline); }) {}
  ~DrainWatch() {
    done_.Notify();
    thread_.join();
  }
  DrainWatch(const DrainWatch&) = delete;
  DrainWatch& operator=(const DrainWatch&) = delete;

 private:
  void Watch(sigset_t signals, absl::Time deadline) {
    while (!done_.HasBeenNotified()) {
      timespec poll{.tv_sec = 0, .tv_nsec = 100'000'000};
      const int signal = sigtimedwait(&signals, nullptr, &poll);
      if (signal == SIGTERM || signal == SIGINT) {
        std::fprintf(stderr, "moeserve: second %s during the drain: exiting now\n", SignalName(signal));
        std::_Exit(128 + signal);
      }
      if (absl::Now() >= deadline && !done_.HasBeenNotified()) {
        std::fprintf(stderr,
                     "moeserve: the shutdown did not finish within --shutdown-timeout + %s: "
                     "exiting now\n",
                     absl::FormatDuration(kShutdownMargin).c_str());
        std::_Exit(kShutdownOverrunExit);
      }
    }
  }

  absl::Notification done_;
  std::thread thread_;  // last: started once the rest is made
};

}  // namespace

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
    options.server.model_id = std::filesystem::path(options.engine.model_dir).lexically_normal().filename().string();
    if (options.server.model_id.empty()) {
      options.server.model_id =
          std::filesystem::path(options.engine.model_dir).lexically_normal().parent_path().filename().string();
    }
  }

  // Probes get 503 while the model loads (the port is taken now, so a clash fails fast).
  absl::StatusOr<std::unique_ptr<LoadingResponder>> loading = LoadingResponder::Start(options.server);
  if (!loading.ok()) return loading.status();
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(options.engine, options.dist);
  if (!engine.ok()) return engine.status();
  (*engine)->Start();
  if (*loading != nullptr) (*loading)->Stop();
  absl::StatusOr<std::unique_ptr<ApiServer>> server = ApiServer::Start(options.server, engine->get());
  if (!server.ok()) {
    (*engine)->Stop();
    return server.status();
  }
  if (options.on_ready) options.on_ready(**server);

  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  MS_LOG(WARNING) << "received " << SignalName(signal) << "; draining for up to "
                  << absl::FormatDuration(options.shutdown_timeout) << " (send it again to exit now)";
  {
    DrainWatch watch(signals, absl::Now() + options.shutdown_timeout + kShutdownMargin);
    (*server)->Shutdown(options.shutdown_timeout);
    server->reset();
    (*engine)->Stop();
  }
  MS_LOG(INFO) << "stopped";
  return absl::OkStatus();
}

}  // namespace moeserve::api
