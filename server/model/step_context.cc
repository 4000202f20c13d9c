#include "server/model/step_context.h"

#include <algorithm>

#include "server/common/status_macros.h"

namespace moeserve {
namespace {

absl::StatusOr<Tensor> UploadI32(const std::vector<int32_t>& values, Shape shape, Backend* backend) {
  ASSIGN_OR_RETURN(Tensor t, backend->Allocate(DType::kI32, shape));
  RETURN_IF_ERROR(backend->CopyFromHost(HostBytes(values), t));
  return t;
}

}  // namespace

absl::StatusOr<StepContext> StepContext::Upload(const ForwardBatch& batch, Backend* backend) {
  StepContext ctx;
  const int32_t t = batch.num_tokens();
  const int32_t s = batch.num_seqs();
  ctx.num_tokens = t;
  ASSIGN_OR_RETURN(ctx.token_ids, UploadI32(batch.token_ids, {t}, backend));
  ASSIGN_OR_RETURN(ctx.positions, UploadI32(batch.positions, {t}, backend));
  ASSIGN_OR_RETURN(ctx.logits_indices,
                   UploadI32(batch.logits_indices, {static_cast<int64_t>(batch.logits_indices.size())}, backend));
  AttentionMetadata& m = ctx.attention;
  m.num_seqs = s;
  m.num_tokens = t;
  m.block_size = batch.block_size;
  for (int32_t i = 0; i < s; ++i) {
    m.max_query_len = std::max(m.max_query_len, batch.query_start_loc[i + 1] - batch.query_start_loc[i]);
    m.max_seq_len = std::max(m.max_seq_len, batch.seq_lens[i]);
  }
  ASSIGN_OR_RETURN(m.query_start_loc, UploadI32(batch.query_start_loc, {s + 1}, backend));
  ASSIGN_OR_RETURN(m.seq_lens, UploadI32(batch.seq_lens, {s}, backend));
  ASSIGN_OR_RETURN(m.block_tables, UploadI32(batch.block_tables, {s, batch.max_blocks_per_seq}, backend));
  ASSIGN_OR_RETURN(m.slot_mapping, UploadI32(batch.slot_mapping, {t}, backend));
  return ctx;
}

}  // namespace moeserve
