#ifndef MOESERVE_SERVER_RUNNER_DECODE_GRAPH_INPUTS_H_
#define MOESERVE_SERVER_RUNNER_DECODE_GRAPH_INPUTS_H_

// The host half of CUDA-graph decode (decode_graph_runner.h): which steps may replay a graph, the
// graph shape they replay, and the padded inputs. Plain data, unit-tested on the CPU.
//
// A graph is keyed by (bucket, width): `bucket` rows (graph_buckets.h: 1, 2, 4, then every 8) and
// a block table `width` blocks wide. The width is a class, not the batch's exact need: the smallest
// power of two >= the blocks the longest sequence needs, at least min_width, at most max_width
// (the model's longest sequence). A batch that outgrows its width moves to the next class, whose
// graph is recorded on first use, so a long-running batch records at most log2(max/min) + 1 graphs
// per bucket and never replays with a too-narrow table. The attention plan of a graph is made for
// seq len width x block_size (its split grid covers any sequence that fits the table).

#include <cstdint>
#include <string>
#include <vector>

#include "server/model/forward_batch.h"

namespace moeserve {

struct DecodeGraphLimits {
  std::vector<int32_t> buckets;  // ascending (cuda_graphs::DecodeBuckets)
  int32_t block_size = 16;
  int32_t min_width = 16;  // blocks
  int32_t max_width = 0;   // blocks: ceil(max_model_len / block_size)
};

struct DecodeGraphShape {
  int32_t bucket = 0;  // rows
  int32_t width = 0;   // block-table columns
  bool operator==(const DecodeGraphShape&) const = default;
};

// The width class for `needed` blocks, or -1 when needed > max_width.
int32_t DecodeGraphWidth(int32_t needed, int32_t min_width, int32_t max_width);

// The graph shape `batch` replays, or false with *why_not set (it runs eagerly). Eligible: a pure
// decode batch (every sequence one new token), every sequence sampling in order (logits_indices ==
// 0..S-1, so no prompt-logprob or other extra rows), S within the largest bucket, the limits' block
// size, and the longest sequence within max_width blocks.
bool ChooseDecodeGraph(const ForwardBatch& batch, const DecodeGraphLimits& limits, DecodeGraphShape* shape,
                       std::string* why_not);

// A step's inputs padded to a graph shape: the batch's n rows first, then rows [n, bucket) that
// are inert (token 0 at position 0, seq_len 1 reading the reserved null block 0, slot -1 so
// nothing is written) and left out of the MoE expert-load counts (num_valid_tokens = n).
struct DecodeGraphInputs {
  std::vector<int32_t> token_ids;        // [bucket]
  std::vector<int32_t> positions;        // [bucket]
  std::vector<int32_t> query_start_loc;  // [bucket + 1] = 0..bucket
  std::vector<int32_t> seq_lens;         // [bucket]
  std::vector<int32_t> block_tables;     // [bucket * width], unused entries the null block
  std::vector<int32_t> slot_mapping;     // [bucket]
  int32_t num_valid_tokens = 0;          // n (StepContext::num_valid_tokens)
};

// REQUIRES: ChooseDecodeGraph(batch) gave `shape`.
void FillDecodeGraphInputs(const ForwardBatch& batch, DecodeGraphShape shape, DecodeGraphInputs* in);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_DECODE_GRAPH_INPUTS_H_
