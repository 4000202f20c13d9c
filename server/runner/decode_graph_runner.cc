#include "server/runner/decode_graph_runner.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/backend/cuda/graph_buckets.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"

namespace moeserve {

std::unique_ptr<DecodeGraphRunner> DecodeGraphRunner::Create(Model* model, Backend* backend,
                                                             const DecodeGraphOptions& options) {
  GraphCapture* graphs = backend->graphs();
  const int32_t block_size = model->kv_layout().block_size;
  if (graphs == nullptr || model->kv_layout().num_blocks < 1 || options.max_batch < 1 || block_size < 1 ||
      options.max_model_len < 1) {
    return nullptr;
  }
  DecodeGraphLimits limits;
  limits.buckets = cuda_graphs::DecodeBuckets(options.max_batch);
  limits.block_size = block_size;
  limits.max_width = (options.max_model_len + block_size - 1) / block_size;
  limits.min_width = std::min(std::max(1, options.min_width_blocks), limits.max_width);
  return std::unique_ptr<DecodeGraphRunner>(new DecodeGraphRunner(model, backend, graphs, std::move(limits)));
}

DecodeGraphRunner::DecodeGraphRunner(Model* model, Backend* backend, GraphCapture* graphs, DecodeGraphLimits limits)
    : model_(model),
      backend_(backend),
      graphs_(graphs),
      limits_(std::move(limits)),
      max_bucket_(limits_.buckets.back()) {}

absl::Status DecodeGraphRunner::AllocateBuffers() {
  const int64_t b = max_bucket_;
  ASSIGN_OR_RETURN(token_ids_, backend_->Allocate(DType::kI32, {b}));
  ASSIGN_OR_RETURN(positions_, backend_->Allocate(DType::kI32, {b}));
  ASSIGN_OR_RETURN(query_start_loc_, backend_->Allocate(DType::kI32, {b + 1}));
  ASSIGN_OR_RETURN(seq_lens_, backend_->Allocate(DType::kI32, {b}));
  ASSIGN_OR_RETURN(block_tables_, backend_->Allocate(DType::kI32, {b * limits_.max_width}));
  ASSIGN_OR_RETURN(slot_mapping_, backend_->Allocate(DType::kI32, {b}));
  ASSIGN_OR_RETURN(logits_indices_, backend_->Allocate(DType::kI32, {b}));
  ASSIGN_OR_RETURN(num_valid_tokens_, backend_->Allocate(DType::kI32, {1}));
  std::vector<int32_t> identity(static_cast<size_t>(b));
  std::iota(identity.begin(), identity.end(), 0);
  const HostUpload up{HostBytes(identity), logits_indices_};
  return graphs_->UploadAsync(absl::MakeConstSpan(&up, 1));
}

absl::StatusOr<StepContext> DecodeGraphRunner::Stage(const ForwardBatch& batch, DecodeGraphShape shape) {
  if (!token_ids_.defined()) RETURN_IF_ERROR(AllocateBuffers());
  FillDecodeGraphInputs(batch, shape, &host_);
  const int64_t b = shape.bucket, w = shape.width;
  StepContext ctx;
  ctx.num_tokens = shape.bucket;
  ctx.token_ids = token_ids_.Slice(0, b);
  ctx.positions = positions_.Slice(0, b);
  ctx.logits_indices = logits_indices_.Slice(0, b);
  ctx.num_valid_tokens = num_valid_tokens_;
  AttentionMetadata& m = ctx.attention;
  m.num_seqs = shape.bucket;
  m.num_tokens = shape.bucket;
  m.max_query_len = 1;
  // The plan (split grid) covers any sequence the table holds, so every replay fits it.
  m.max_seq_len = shape.width * limits_.block_size;
  m.block_size = limits_.block_size;
  m.query_start_loc = query_start_loc_.Slice(0, b + 1);
  m.seq_lens = seq_lens_.Slice(0, b);
  m.block_tables = block_tables_.Slice(0, b * w).View({b, w});
  m.slot_mapping = slot_mapping_.Slice(0, b);
  const HostUpload ups[] = {
      {HostBytes(host_.token_ids), ctx.token_ids},
      {HostBytes(host_.positions), ctx.positions},
      {HostBytes(host_.query_start_loc), m.query_start_loc},
      {HostBytes(host_.seq_lens), m.seq_lens},
      {HostBytes(host_.block_tables), block_tables_.Slice(0, b * w)},
      {HostBytes(host_.slot_mapping), m.slot_mapping},
      {absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&host_.num_valid_tokens), sizeof(int32_t)),
       num_valid_tokens_},
  };
  RETURN_IF_ERROR(graphs_->UploadAsync(ups));
  return ctx;
}

absl::StatusOr<Tensor> DecodeGraphRunner::WarmUpAndRecord(const StepContext& ctx, DecodeGraphShape shape, Graph* g) {
  graphs_->BeginPoolAllocations();
  absl::StatusOr<Tensor> warm = model_->ForwardOnDevice(ctx);
  graphs_->EndPoolAllocations();
  if (!warm.ok()) return warm.status();

  absl::Status recorded = graphs_->BeginCapture();
  absl::StatusOr<Tensor> out = absl::UnknownError("not run");
  if (recorded.ok()) {
    out = model_->ForwardOnDevice(ctx);
    absl::StatusOr<int> id = graphs_->EndCapture();
    // The first failing op says more than the invalidated recording.
    recorded = !out.ok() ? out.status() : id.status();
    if (recorded.ok()) {
      g->state = State::kRecorded;
      g->id = *id;
      g->logits_data = out->data();
      g->logits_dtype = out->dtype();
      ++num_graphs_;
    }
  }
  if (!recorded.ok()) {
    g->state = State::kEager;
    MS_LOG(WARNING) << "CUDA graph for decode bucket " << shape.bucket << " x " << shape.width
                    << " blocks not recorded, running it eagerly: " << recorded;
  }
  return *std::move(warm);
}

absl::StatusOr<Tensor> DecodeGraphRunner::Run(const ForwardBatch& batch) {
  DecodeGraphShape shape;
  std::string why_not;
  if (!ChooseDecodeGraph(batch, limits_, &shape, &why_not)) return Tensor();
  const auto key = std::make_pair(shape.bucket, shape.width);
  auto it = graphs_by_shape_.find(key);
  if (it != graphs_by_shape_.end() && it->second.state == State::kEager) {
    return RunPaddedEager(batch);
  }
  if (absl::Status s = model_->ValidateBatch(batch); !s.ok()) {
    if (absl::IsUnimplemented(s)) return Tensor();
    return s;
  }
  ASSIGN_OR_RETURN(StepContext ctx, Stage(batch, shape));
  const int64_t n = batch.num_seqs();
  if (it == graphs_by_shape_.end()) {
    Graph& g = graphs_by_shape_[key];
    absl::StatusOr<Tensor> warm = WarmUpAndRecord(ctx, shape, &g);
    if (absl::IsUnimplemented(warm.status())) return Tensor();  // the model cannot split Forward
    RETURN_IF_ERROR(warm.status());
    return warm->Slice(0, n);
  }
  const Graph& g = it->second;
  RETURN_IF_ERROR(graphs_->Replay(g.id));
  ++replays_;
  const Shape full({static_cast<int64_t>(shape.bucket), model_->config().vocab_size});
  return Tensor(std::shared_ptr<void>(), g.logits_data, g.logits_dtype, full).Slice(0, n);
}

absl::StatusOr<Tensor> DecodeGraphRunner::RunPaddedEager(const ForwardBatch& batch) {
  DecodeGraphShape shape;
  std::string why_not;
  if (!ChooseDecodeGraph(batch, limits_, &shape, &why_not)) return Tensor();
  if (absl::Status s = model_->ValidateBatch(batch); !s.ok()) {
    if (absl::IsUnimplemented(s)) return Tensor();
    return s;
  }
  ASSIGN_OR_RETURN(StepContext ctx, Stage(batch, shape));
  absl::StatusOr<Tensor> logits = model_->ForwardOnDevice(ctx);
  if (absl::IsUnimplemented(logits.status())) return Tensor();
  RETURN_IF_ERROR(logits.status());
  return logits->Slice(0, batch.num_seqs());
}

}  // namespace moeserve
