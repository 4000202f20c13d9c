#ifndef MOESERVE_SERVER_MODEL_FORWARD_BATCH_H_
#define MOESERVE_SERVER_MODEL_FORWARD_BATCH_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace moeserve {

// One step's work for the model, on the host: a flat batch of new tokens from several sequences
// (decode tokens and prefill chunks mixed), where each sequence's KV rows live in the paged cache.
// This is what the scheduler produces each step (through the model runner) and what tests build by
// hand. Plain data; validated by Validate().
struct ForwardBatch {
  int32_t block_size = 16;
  std::vector<int32_t> token_ids;        // [T] new tokens, sequences concatenated
  std::vector<int32_t> positions;        // [T] position of each new token in its sequence
  std::vector<int32_t> query_start_loc;  // [S + 1]
  std::vector<int32_t> seq_lens;         // [S] context length after this step
  int32_t max_blocks_per_seq = 0;
  std::vector<int32_t> block_tables;    // [S * max_blocks_per_seq], unused entries 0
  std::vector<int32_t> slot_mapping;    // [T] cache slot each new token's K/V is written to
  std::vector<int32_t> logits_indices;  // rows of the batch whose next-token logits are wanted

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(seq_lens.size()); }

  // Appends a sequence whose first `num_cached` tokens are already in the cache and whose
  // `new_tokens` follow; `block_table` must cover num_cached + new_tokens.size() tokens. When
  // `want_logits`, the last new token's row is added to logits_indices. Rows are padded to
  // max_blocks_per_seq (widened, re-packing earlier rows, when a longer table arrives; set it
  // beforehand to the widest table to avoid that).
  void AddSequence(absl::Span<const int32_t> new_tokens, int32_t num_cached, absl::Span<const int32_t> block_table,
                   bool want_logits);

  // Checks internal consistency against a cache of `num_blocks` blocks and a model accepting
  // `max_position` positions; InvalidArgument naming the field otherwise.
  absl::Status Validate(int32_t num_blocks, int32_t max_position) const;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_FORWARD_BATCH_H_
