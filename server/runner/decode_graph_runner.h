#ifndef MOESERVE_SERVER_RUNNER_DECODE_GRAPH_RUNNER_H_
#define MOESERVE_SERVER_RUNNER_DECODE_GRAPH_RUNNER_H_

// DecodeGraphRunner: runs pure-decode steps by replaying a recorded graph of the whole forward
// pass (Backend::graphs(), CUDA graphs), so a step costs one launch instead of hundreds.
//
// Per step: ChooseDecodeGraph picks the (bucket, width) shape (decode_graph_inputs.h; other
// steps return an undefined Tensor and the caller runs Model::Forward), the padded inputs go into
// persistent device buffers by one async upload from pinned staging, and the shape's graph
// replays; the logits are the first n rows of the graph's output. A shape's first use runs the
// same padded step eagerly with its allocations in the graph pool (warming cuBLASLt plans and
// workspaces, and leaving the pool holding the blocks the recording needs), returns that step's
// logits, and then records the graph, which later steps replay. If recording fails (an op that
// cannot be captured), the shape runs eagerly (padded) from then on and the reason is logged once.
//
// The returned logits are valid until the next Run/RunPaddedEager (graphs share one pool, so a
// later replay may reuse their memory). Padded rows route through MoE layers like real tokens but
// stay out of the expert-load metrics: the step carries its real-row count on the device
// (StepContext::num_valid_tokens, uploaded with the other inputs), which MoeExperts reads.
//
// Memory: the persistent inputs (max bucket x max width block table) plus the graph pool, which
// holds about one decode step's activations at the largest bucket used (all graphs share it);
// PlanKvCache reserves one more activation peak for it (KvCachePlanOptions::reserve_graph_memory).
//
// Requires external synchronization (the engine thread).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/model/model.h"
#include "server/model/step_context.h"
#include "server/runner/decode_graph_inputs.h"

namespace moeserve {

struct DecodeGraphOptions {
  int32_t max_batch = 256;    // the largest bucket (--max-graph-batch)
  int32_t max_model_len = 0;  // tokens; sets the widest block table
  int32_t min_width_blocks = 16;
};

class DecodeGraphRunner {
 public:
  // nullptr when the backend cannot record graphs (the CPU), the model cannot run from device
  // inputs or has no KV cache. Graphs are shaped for the cache's layout (model->kv_layout()), which
  // must not change while the runner lives. `model` and `backend` must outlive the runner.
  static std::unique_ptr<DecodeGraphRunner> Create(Model* model, Backend* backend, const DecodeGraphOptions& options);
  DecodeGraphRunner(const DecodeGraphRunner&) = delete;
  DecodeGraphRunner& operator=(const DecodeGraphRunner&) = delete;

  // Logits [S, vocab] of `batch` through its graph, or an undefined Tensor when the batch is not
  // eligible (the caller runs Model::Forward). An error means the step failed.
  absl::StatusOr<Tensor> Run(const ForwardBatch& batch);
  // The same padded step run eagerly, never recorded: what Run's replay must equal bit for bit.
  // Undefined Tensor when not eligible.
  absl::StatusOr<Tensor> RunPaddedEager(const ForwardBatch& batch);

  int num_graphs() const { return num_graphs_; }
  int64_t replays() const { return replays_; }
  const DecodeGraphLimits& limits() const { return limits_; }

 private:
  enum class State { kRecorded, kEager };
  struct Graph {
    State state = State::kEager;
    int id = -1;
    // The graph's output: its block is back in the pool (not owned), rewritten by each replay.
    void* logits_data = nullptr;
    DType logits_dtype = DType::kBF16;
  };

  DecodeGraphRunner(Model* model, Backend* backend, GraphCapture* graphs, DecodeGraphLimits limits);
  // Uploads the padded inputs of `batch` and returns the step context over the persistent buffers.
  absl::StatusOr<StepContext> Stage(const ForwardBatch& batch, DecodeGraphShape shape);
  absl::Status AllocateBuffers();
  // Eager warm-up in the pool, then the recording. Returns the warm-up's logits.
  absl::StatusOr<Tensor> WarmUpAndRecord(const StepContext& ctx, DecodeGraphShape shape, Graph* g);

  Model* const model_;
  Backend* const backend_;
  GraphCapture* const graphs_;
  const DecodeGraphLimits limits_;
  const int32_t max_bucket_;
  // Persistent inputs: every graph reads prefixes of these (bucket rows, width columns).
  Tensor token_ids_, positions_, query_start_loc_, seq_lens_, block_tables_, slot_mapping_, logits_indices_,
      num_valid_tokens_;
  DecodeGraphInputs host_;
  std::map<std::pair<int32_t, int32_t>, Graph> graphs_by_shape_;
  int num_graphs_ = 0;
  int64_t replays_ = 0;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_DECODE_GRAPH_RUNNER_H_
