// The tensor-parallel options shared by `serve` and `generate`, and the split of an MPI job into
// rank 0 (the command itself) and the followers (server/engine/follower.h).

#include <memory>

#include "server/cli/commands.h"
#include "server/common/logging.h"
#include "server/dist/registry.h"
#include "server/engine/follower.h"

namespace moeserve {

void AddParallelOptions(CLI::App* cmd, EngineConfig* config) {
  cmd->add_option("--tensor-parallel-size,--tp", config->tensor_parallel_size,
                  "shard the model over this many ranks, one process each: mpirun -np N moeserve ...")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--expert-parallel", config->expert_parallel,
                "place MoE experts whole on ranks instead of sharding every expert");
  cmd->add_option("--ep-dispatch", config->ep_dispatch,
                  "with --expert-parallel, how tokens reach their experts: allreduce (every rank runs its experts "
                  "over every token; an all-reduce joins them) or alltoall (tokens split over the ranks, sent to "
                  "their experts' ranks and back; no CUDA graphs)")
      ->capture_default_str()
      ->check(CLI::IsMember({"allreduce", "alltoall"}));
  cmd->add_option("--collective-timeout", config->collective_timeout_seconds,
                  "seconds a collective may wait for the other ranks before the group is ended")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
}

absl::Status RunGroup(const EngineConfig& config, const std::function<absl::Status(DistContext*)>& leader) {
  if (config.tensor_parallel_size <= 1) return leader(nullptr);
  absl::StatusOr<std::unique_ptr<DistContext>> dist =
      DistContext::Create({.tensor_parallel_size = config.tensor_parallel_size,
                           .collective_timeout = absl::Seconds(config.collective_timeout_seconds)});
  if (!dist.ok()) return dist.status();
  if ((*dist)->rank() != 0) return RunFollower(config, dist->get());
  return leader(dist->get());
}

}  // namespace moeserve
