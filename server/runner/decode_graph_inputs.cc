#include "server/runner/decode_graph_inputs.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/backend/cuda/graph_buckets.h"

namespace moeserve {

int32_t DecodeGraphWidth(int32_t needed, int32_t min_width, int32_t max_width) {
  if (needed > max_width || max_width < 1) return -1;
  int64_t w = std::max(min_width, 1);
  while (w < needed) w *= 2;
  return static_cast<int32_t>(std::min<int64_t>(w, max_width));
}

bool ChooseDecodeGraph(const ForwardBatch& batch, const DecodeGraphLimits& limits, DecodeGraphShape* shape,
                       std::string* why_not) {
  const int32_t n = batch.num_seqs();
  if (n < 1) {
    *why_not = "empty batch";
    return false;
  }
  if (batch.block_size != limits.block_size) {
    *why_not = absl::StrCat("block size ", batch.block_size, " != ", limits.block_size);
    return false;
  }
  if (batch.num_tokens() != n || static_cast<int32_t>(batch.query_start_loc.size()) != n + 1) {
    *why_not = "not a pure decode batch";
    return false;
  }
  for (int32_t s = 0; s < n; ++s) {
    if (batch.query_start_loc[s + 1] - batch.query_start_loc[s] != 1) {
      *why_not = "not a pure decode batch";
      return false;
    }
  }
  if (static_cast<int32_t>(batch.logits_indices.size()) != n) {
    *why_not = "logits rows differ from one per sequence";
    return false;
  }
  for (int32_t s = 0; s < n; ++s) {
    if (batch.logits_indices[s] != s) {
      *why_not = "logits rows differ from one per sequence";
      return false;
    }
  }
  const int32_t bucket = cuda_graphs::ChooseBucket(limits.buckets, n);
  if (bucket < 0) {
    *why_not = absl::StrCat(n, " sequences exceed the largest bucket");
    return false;
  }
  int32_t needed = 1;
  for (int32_t len : batch.seq_lens) {
    needed = std::max(needed, (len + limits.block_size - 1) / limits.block_size);
  }
  const int32_t width = DecodeGraphWidth(needed, limits.min_width, limits.max_width);
  if (width < 0) {
    *why_not = absl::StrCat("a sequence needs ", needed, " blocks, more than ", limits.max_width);
    return false;
  }
  *shape = DecodeGraphShape{.bucket = bucket, .width = width};
  return true;
}

void FillDecodeGraphInputs(const ForwardBatch& batch, DecodeGraphShape shape, DecodeGraphInputs* in) {
  const int32_t n = batch.num_seqs();
  const int32_t b = shape.bucket, w = shape.width;
  in->token_ids.assign(b, 0);
  in->positions.assign(b, 0);
  in->seq_lens.assign(b, 1);
  in->slot_mapping.assign(b, -1);
  in->block_tables.assign(static_cast<size_t>(b) * w, 0);  // the null block
  in->query_start_loc.resize(b + 1);
  for (int32_t i = 0; i <= b; ++i) in->query_start_loc[i] = i;
  std::copy(batch.token_ids.begin(), batch.token_ids.begin() + n, in->token_ids.begin());
  std::copy(batch.positions.begin(), batch.positions.begin() + n, in->positions.begin());
  std::copy(batch.seq_lens.begin(), batch.seq_lens.begin() + n, in->seq_lens.begin());
  std::copy(batch.slot_mapping.begin(), batch.slot_mapping.begin() + n, in->slot_mapping.begin());
  in->num_valid_tokens = n;
  const int32_t cols = std::min(w, batch.max_blocks_per_seq);
  for (int32_t s = 0; s < n; ++s) {
    const auto src = batch.block_tables.begin() + static_cast<int64_t>(s) * batch.max_blocks_per_seq;
    std::copy(src, src + cols, in->block_tables.begin() + static_cast<int64_t>(s) * w);
  }
}

}  // namespace moeserve
