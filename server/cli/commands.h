#ifndef MOESERVE_SERVER_CLI_COMMANDS_H_
#define MOESERVE_SERVER_CLI_COMMANDS_H_

#include <functional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "server/dist/registry.h"
#include "server/engine/engine_config.h"

namespace moeserve {

// Each subcommand of `moeserve` registers itself on the app; its callback stores the command's
// result in *status. main() turns that into the exit code.
void AddGenerateCommand(CLI::App& app, absl::Status* status);
void AddConvertCommand(CLI::App& app, absl::Status* status);
void AddMakeModelCommand(CLI::App& app, absl::Status* status);
void AddTokenizeCommand(CLI::App& app, absl::Status* status);
void AddServeCommand(CLI::App& app, absl::Status* status);  // serve_command.cc (gRPC builds only)
void AddPlanCommand(CLI::App& app, absl::Status* status);   // plan_command.cc

// --gpu-memory-utilization and --kv-cache-memory (device KV budget) into `config`
// (device_memory_options.cc).
void AddDeviceMemoryOptions(CLI::App* cmd, EngineConfig* config);

// --tensor-parallel-size, --expert-parallel and --collective-timeout into `config`
// (parallel_options.cc).
void AddParallelOptions(CLI::App* cmd, EngineConfig* config);
// Runs `leader` on rank 0 of the group config.tensor_parallel_size asks for (the ranks mpirun
// started) and the follower loop on the others; a group of one runs `leader` with null.
absl::Status RunGroup(const EngineConfig& config, const std::function<absl::Status(DistContext*)>& leader);

// --speculative-method, --num-speculative-tokens, --ngram-min/--ngram-max and the auto-off
// thresholds into `config` (speculative_options.cc).
void AddSpeculativeOptions(CLI::App* cmd, SpeculativeConfig* config);

// The model `serve` and `generate` use when --model is not given: the repository's embedded model.
std::string DefaultModelDir();

}  // namespace moeserve

#endif  // MOESERVE_SERVER_CLI_COMMANDS_H_
