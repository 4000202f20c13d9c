#ifndef MOESERVE_SERVER_ENGINE_FOLLOWER_H_
#define MOESERVE_SERVER_ENGINE_FOLLOWER_H_

// The engine's counterpart on ranks > 0 of a tensor-parallel group: loads this rank's shard of the
// model from the same config as rank 0's Engine, plans and agrees on the KV layout with it, and
// runs the batches rank 0 sends (ModelRunner::Follow) until rank 0 stops. Nothing here faces
// clients: rank 0 owns the front ends, the scheduler and the KV bookkeeping.

#include "absl/status/status.h"
#include "server/dist/registry.h"
#include "server/engine/engine_config.h"

namespace moeserve {

// Blocks until rank 0's engine stops (OK). Load errors are returned (the launcher then ends the
// group); a failed step ends the group itself.
absl::Status RunFollower(const EngineConfig& config, DistContext* dist);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_ENGINE_FOLLOWER_H_
