// moeserve: serve, generate, tokenize, convert, make-model and plan.

#include <cstdio>

#include "server/cli/commands.h"
#include "server/common/logging.h"

namespace moeserve {

std::string DefaultModelDir() { return MOESERVE_DEFAULT_MODEL_DIR; }

}  // namespace moeserve

int main(int argc, char** argv) {
  CLI::App app{"moeserve: an inference server for DeepSeek-style mixture-of-experts models"};
  app.require_subcommand(1);
  app.fallthrough();  // --log-level may also follow the subcommand
  std::string log_level = "warning";
  app.add_option("--log-level", log_level, "debug, info, warning or error")->capture_default_str();
  absl::Status status;
#ifdef MOESERVE_WITH_SERVE
  moeserve::AddServeCommand(app, &status);
#endif
  moeserve::AddGenerateCommand(app, &status);
  moeserve::AddTokenizeCommand(app, &status);
  moeserve::AddConvertCommand(app, &status);
  moeserve::AddMakeModelCommand(app, &status);
  moeserve::AddPlanCommand(app, &status);
  app.parse_complete_callback([&] {
    moeserve::LogLevel level;
    if (!moeserve::ParseLogLevel(log_level, &level)) {
      throw CLI::ValidationError("--log-level", "must be debug, info, warning or error");
    }
    moeserve::SetMinLogLevel(level);
  });
  CLI11_PARSE(app, argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "moeserve: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
