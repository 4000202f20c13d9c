#include "server/runner/forward_batch_builder.h"

#include <algorithm>

namespace moeserve {

ForwardBatchBuilder::ForwardBatchBuilder(const KvLayout& layout) { batch_.block_size = layout.block_size; }

void ForwardBatchBuilder::WriteRow(size_t row, const ScheduledRequest& entry) {
  const size_t width = static_cast<size_t>(batch_.max_blocks_per_seq);
  int32_t* out = batch_.block_tables.data() + row * width;
  const size_t have = row < row_blocks_.size() ? static_cast<size_t>(row_blocks_[row]) : 0;
  const size_t want = entry.block_ids.size();
  const bool extends = row < row_ids_.size() && row_ids_[row] == entry.id && have <= want &&
                       (have == 0 || (out[0] == entry.block_ids[0] && out[have - 1] == entry.block_ids[have - 1]));
  const size_t from = extends ? have : 0;
  std::copy(entry.block_ids.begin() + from, entry.block_ids.end(), out + from);
  if (want < have) std::fill(out + want, out + have, 0);  // a shorter table than before
  last_block_ids_written_ += static_cast<int64_t>(want - from);
  row_ids_[row] = entry.id;
  row_blocks_[row] = static_cast<int32_t>(want);
}

const ForwardBatch& ForwardBatchBuilder::Build(const SchedulerOutput& step,
                                               absl::Span<const int32_t> extra_logits_rows) {
  ForwardBatch& b = batch_;
  const size_t num_seqs = step.scheduled.size();
  b.token_ids.clear();
  b.positions.clear();
  b.slot_mapping.clear();
  b.seq_lens.clear();
  b.logits_indices.clear();
  b.query_start_loc.assign(1, 0);
  b.token_ids.reserve(step.total_num_scheduled_tokens);
  b.positions.reserve(step.total_num_scheduled_tokens);
  b.slot_mapping.reserve(step.total_num_scheduled_tokens);
  last_block_ids_written_ = 0;

  int32_t widest = 0;
  for (const ScheduledRequest& entry : step.scheduled) {
    widest = std::max(widest, static_cast<int32_t>(entry.block_ids.size()));
  }
  if (widest > b.max_blocks_per_seq) {
    // Re-lay every row at the new width.
    b.max_blocks_per_seq = (widest + kWidthQuantum - 1) / kWidthQuantum * kWidthQuantum;
    b.block_tables.assign(num_seqs * static_cast<size_t>(b.max_blocks_per_seq), 0);
    row_ids_.clear();
    row_blocks_.clear();
  } else {
    // Rows past the old end come zeroed; rows dropped at the end are forgotten.
    b.block_tables.resize(num_seqs * static_cast<size_t>(b.max_blocks_per_seq), 0);
    if (row_blocks_.size() > num_seqs) {
      row_ids_.resize(num_seqs);
      row_blocks_.resize(num_seqs);
    }
  }
  const size_t previous_rows = row_ids_.size();
  row_ids_.resize(num_seqs, 0);
  row_blocks_.resize(num_seqs, 0);
  // Rows the last build did not have hold zeros: nothing to extend there. A table that lost
  // blocks (rejected drafts) may have regrown to the same ends: rewrite it too.
  for (size_t row = previous_rows; row < num_seqs; ++row) row_ids_[row] = ~RequestId{0};
  if (!step.trimmed_request_ids.empty()) {
    for (size_t row = 0; row < previous_rows && row < num_seqs; ++row) {
      if (std::find(step.trimmed_request_ids.begin(), step.trimmed_request_ids.end(), row_ids_[row]) !=
          step.trimmed_request_ids.end()) {
        row_ids_[row] = ~RequestId{0};
      }
    }
  }

  const int32_t block_size = b.block_size;
  for (size_t row = 0; row < num_seqs; ++row) {
    const ScheduledRequest& entry = step.scheduled[row];
    WriteRow(row, entry);
    const int32_t n = entry.num_new_tokens;
    for (int32_t i = 0; i < n; ++i) {
      const int32_t pos = entry.start_position + i;
      b.token_ids.push_back(entry.token_ids[i]);
      b.positions.push_back(pos);
      const size_t logical = static_cast<size_t>(pos / block_size);
      b.slot_mapping.push_back(
          logical < entry.block_ids.size() ? entry.block_ids[logical] * block_size + pos % block_size : -1);
    }
    b.query_start_loc.push_back(b.query_start_loc.back() + n);
    b.seq_lens.push_back(entry.start_position + n);
    if (entry.samples && n > 0) {
      // The last token's row, or with drafts the rows of the last token and every draft.
      const int32_t end = b.query_start_loc.back();
      for (int32_t r = end - std::min(n, 1 + entry.num_draft_tokens); r < end; ++r) {
        b.logits_indices.push_back(r);
      }
    }
  }
  b.logits_indices.insert(b.logits_indices.end(), extra_logits_rows.begin(), extra_logits_rows.end());
  return b;
}

}  // namespace moeserve
