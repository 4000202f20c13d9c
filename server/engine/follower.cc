#include "server/engine/follower.h"

#include <algorithm>

#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/engine/engine.h"
#include "server/runner/model_runner.h"
#include "server/runner/step_channel.h"

namespace moeserve {

absl::Status RunFollower(const EngineConfig& config, DistContext* dist) {
  ASSIGN_OR_RETURN(EngineParts parts, LoadEngineParts(config, dist));
  EngineConfig c = config;
  const int64_t model_len = parts.model->config().max_position_embeddings;
  if (c.max_model_len <= 0 || c.max_model_len > model_len) c.max_model_len = static_cast<int32_t>(model_len);
  // The same steps as Engine::Init, collectives in the same order.
  ASSIGN_OR_RETURN(const KvLayout layout, PlanEngineKvLayout(c, parts.model.get(), parts.backend.get(), parts.group));
  Sampler sampler({.vocab_size = static_cast<int32_t>(parts.model->config().vocab_size)});  // never samples
  ModelRunner runner(parts.model.get(), parts.backend.get(), &sampler);
  RETURN_IF_ERROR(runner.AllocateKvCache(layout));
  if (c.cuda_graphs && c.max_graph_batch > 0 && UsesCudaGraphs(c)) {
    runner.EnableDecodeGraphs(
        {.max_batch = std::min(c.max_graph_batch, c.max_num_seqs), .max_model_len = c.max_model_len});
  }
  RETURN_IF_ERROR(parts.model->ResetExpertLoad());
  MS_LOG(INFO) << "rank " << dist->rank() << " of " << dist->world_size() << ": following rank 0 (" << layout.ToString()
               << ")";
  StepChannel channel(parts.group);
  return runner.Follow(&channel);
}

}  // namespace moeserve
