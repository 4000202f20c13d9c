#ifndef MOESERVE_SERVER_KV_KV_LAYOUT_H_
#define MOESERVE_SERVER_KV_KV_LAYOUT_H_

// The shape of the paged KV cache, as one value: made once (server/runner/kv_memory_plan.h, from
// the model's per-layer spec and the memory budget) and handed as is to the three parties that
// must agree on it: the KvCacheManager (block ids: num_blocks, block_size), the model's cache
// tensors (Model::AllocateKvCache: every layer's rows) and the forward-batch builder (slots:
// block_size). Nobody else keeps a block size of their own.
//
// With tensor parallelism each rank's cache holds its share of the heads, so bytes_per_token
// differs by rank while block_size and num_blocks (the block ids rank 0 hands out) are the same
// on every rank.
//
// Plain data; cheap to copy.

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace moeserve {

// Bytes the paged KV cache takes per token in each layer (every layer of the supported
// architectures has the same cache row): K+V rows of the kv heads, or one MLA latent row.
struct KvCacheSpec {
  int64_t num_layers = 0;
  int64_t bytes_per_token_per_layer = 0;
  int64_t bytes_per_token() const { return num_layers * bytes_per_token_per_layer; }
  int64_t bytes_per_block(int32_t block_size) const { return bytes_per_token() * block_size; }
  friend bool operator==(const KvCacheSpec&, const KvCacheSpec&) = default;
};

struct KvLayout {
  int32_t block_size = 16;  // tokens per block
  int32_t num_blocks = 0;   // including the reserved null block 0
  KvCacheSpec spec;         // per layer, on this rank

  int64_t bytes_per_block() const { return spec.bytes_per_block(block_size); }
  int64_t total_bytes() const { return bytes_per_block() * num_blocks; }
  // Tokens the usable blocks (all but the null block) hold.
  int64_t capacity_tokens() const { return int64_t{num_blocks - 1} * block_size; }

  // InvalidArgument naming the field: block_size < 1, num_blocks < 2, or a spec without layers or
  // bytes.
  absl::Status Validate() const;
  std::string ToString() const;  // "1024 blocks x 16 tokens, 28 layers x 4096 B/token = 1.75 GiB"
  friend bool operator==(const KvLayout&, const KvLayout&) = default;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_KV_KV_LAYOUT_H_
