#ifndef MOESERVE_SERVER_RUNNER_FORWARD_BATCH_BUILDER_H_
#define MOESERVE_SERVER_RUNNER_FORWARD_BATCH_BUILDER_H_

// ForwardBatchBuilder: turns each scheduler step into its ForwardBatch, in storage kept across
// steps, so that a decode step costs O(sequences + new blocks) instead of O(sequences x blocks
// per sequence). Block-table rows stay where they are while the batch holds the same requests in
// the same order; a row then only gets the block ids appended since the last step (a request's
// block table only grows while it holds blocks, except for the tail blocks of rejected drafts,
// which the step then lists in trimmed_request_ids). A row is rewritten when its request changes
// (composition or order changed), when its table no longer extends what the row holds (checked
// on the first and last ids: a preempted request comes back with new blocks), or when its
// request was trimmed (the table may have regrown to the same ends). Rows are padded with the
// null block 0 to max_blocks_per_seq, which grows in steps of kWidthQuantum blocks so that
// growing contexts rarely re-lay the whole table.
//
// Produces exactly what laying each entry out in order with ForwardBatch::AddSequence produces,
// except for the wider padding.
// Requires external synchronization (the engine thread).

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

#include "server/kv/kv_layout.h"
#include "server/model/forward_batch.h"
#include "server/scheduler/scheduler.h"

namespace moeserve {

class ForwardBatchBuilder {
 public:
  static constexpr int32_t kWidthQuantum = 32;

  // Batches for a cache of `layout` (its block size).
  explicit ForwardBatchBuilder(const KvLayout& layout);

  ForwardBatchBuilder(const ForwardBatchBuilder&) = delete;
  ForwardBatchBuilder& operator=(const ForwardBatchBuilder&) = delete;

  // The batch of `step`; valid until the next Build(). Entries in order, logits rows for the
  // entries that sample (1 + num_draft_tokens each: the verify positions), then
  // `extra_logits_rows` (batch rows, e.g. prompt logprobs) in order.
  const ForwardBatch& Build(const SchedulerOutput& step, absl::Span<const int32_t> extra_logits_rows = {});

  // Block ids written by the last Build() (tests: the incremental path is taken).
  int64_t last_block_ids_written() const { return last_block_ids_written_; }

 private:
  void WriteRow(size_t row, const ScheduledRequest& entry);

  ForwardBatch batch_;
  std::vector<RequestId> row_ids_;   // request of each row, as of the last Build()
  std::vector<int32_t> row_blocks_;  // block ids written in each row (the rest is 0)
  int64_t last_block_ids_written_ = 0;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_FORWARD_BATCH_BUILDER_H_
