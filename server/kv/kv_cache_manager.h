#ifndef MOESERVE_SERVER_KV_KV_CACHE_MANAGER_H_
#define MOESERVE_SERVER_KV_KV_CACHE_MANAGER_H_

// KvCacheManager: which KV blocks each request holds, with prefix caching. Deals in block ids only,
// so it serves any layer layout (standard K/V per kv-head, MLA latent rows): the model runner turns
// block ids into tensor slots, token position p of a request living in slot p % block_size of
// block block_ids[p / block_size].
//
// Protocol, per request and step (vLLM v1 / nano-vllm style):
//   ComputedBlocks hit = GetComputedBlocks(seq);        // only before the request holds blocks
//   if (!AllocateSlots(seq, num_new_tokens, hit)) ...   // false: out of blocks, nothing changed
//   ... forward pass writes KV for the new tokens, the caller advances num_computed_tokens ...
//   Free(seq);                                          // finished, aborted or preempted
//
// Caching: a full block is registered under its chained key (block_hash.h) once all its tokens are
// computed, i.e. at the first AllocateSlots() or Free() that sees it covered by
// seq.num_computed_tokens. A block being written in the current step is therefore never handed to
// another request, and an aborted step never leaves an unwritten block in the cache. A request
// never takes a cached block for its last known token: it must compute at least one token to get
// logits. Free() releases blocks tail first, so a freed request's tail blocks are evicted before
// its (more shareable) head blocks.
//
// Forking (parallel sampling, n > 1): a child request with the same prompt as a parent takes
// GetForkedBlocks() instead of GetComputedBlocks() and passes it to AllocateSlots() the same way.
// It then holds references to the parent's computed full prompt blocks, with or without prefix
// caching. Only full blocks are shared, and never the one holding the child's last token, so no
// request ever writes a block another one holds: the child recomputes its partial tail (at most
// block_size tokens, and it needs the last prompt token's logits anyway) into blocks of its own.
// That costs a few recomputed tokens per child instead of a backend block-copy op, keeps block
// tables append-only and makes a shared block immutable for as long as it is shared.
//
// Requires external synchronization (owned by the engine thread).

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/kv/block_hash.h"
#include "server/kv/block_pool.h"
#include "server/kv/kv_layout.h"

namespace moeserve {

using RequestId = uint64_t;

struct KvCacheConfig {
  int32_t num_blocks = 0;   // including the reserved null block
  int32_t block_size = 16;  // tokens per block
  bool enable_prefix_caching = true;
};

// The number of blocks a memory budget holds, given the bytes one block takes over all layers
// (computed by the model side from its KV layout). Fails when fewer than 2 blocks fit.
absl::StatusOr<int32_t> NumKvBlocksForMemory(int64_t memory_budget_bytes, int64_t bytes_per_block);

// What the manager reads of a request. Built by the scheduler from its Request for each call.
struct KvSequence {
  RequestId id = 0;
  absl::Span<const int32_t> token_ids;  // prompt followed by the outputs so far
  int32_t num_computed_tokens = 0;      // tokens whose KV is written
  std::string_view cache_salt;
  // Memo of the keys of the sequence's full blocks, owned by the request and extended here. Valid
  // for as long as token_ids only grows at the end. Must not be null.
  std::vector<BlockHash>* block_hashes = nullptr;
};

// A prefix-cache hit: blocks whose KV is already computed, and the tokens they cover.
struct ComputedBlocks {
  std::vector<int32_t> block_ids;
  int32_t num_tokens = 0;
  bool forked = false;  // taken from a parent request, not from the prefix cache (not a "hit")
};

struct KvCacheUsage {
  int32_t num_blocks = 0;              // usable blocks (without the null block)
  int32_t num_used_blocks = 0;         // referenced by at least one request
  int32_t num_free_blocks = 0;         // unreferenced: allocatable, cached or not
  int32_t num_cached_free_blocks = 0;  // unreferenced but holding a prefix key (evictable)
  int64_t prefix_query_tokens = 0;     // tokens of admitted requests looked up in the cache
  int64_t prefix_hit_tokens = 0;       // of which served from cached blocks
};

class KvCacheManager {
 public:
  // Fails with InvalidArgument on block_size < 1 or num_blocks < 2.
  static absl::StatusOr<std::unique_ptr<KvCacheManager>> Create(const KvCacheConfig& config);
  // The manager of `layout`'s blocks (the engine's way: one layout for manager, cache and batches).
  static absl::StatusOr<std::unique_ptr<KvCacheManager>> Create(const KvLayout& layout, bool enable_prefix_caching);

  KvCacheManager(const KvCacheManager&) = delete;
  KvCacheManager& operator=(const KvCacheManager&) = delete;

  const KvCacheConfig& config() const { return config_; }
  int32_t block_size() const { return config_.block_size; }
  int32_t num_usable_blocks() const { return pool_.num_usable_blocks(); }
  int32_t num_free_blocks() const { return pool_.num_free_blocks(); }
  int32_t NumBlocksFor(int64_t num_tokens) const;

  // The longest run of cached full blocks that prefixes seq.token_ids, never covering the last
  // token. Takes no references: pass the result to AllocateSlots() before any other call.
  // REQUIRES: the request holds no blocks and seq.num_computed_tokens == 0.
  ComputedBlocks GetComputedBlocks(const KvSequence& seq);

  // The parent's leading full blocks that a child forked from it can hold instead of computing:
  // blocks covering only tokens the parent has computed, among the first `shared_tokens` (the
  // tokens the two sequences have in common, e.g. the prompt), and never seq's last token. Empty
  // when the parent holds no blocks. Takes no references: pass the result to AllocateSlots()
  // before any other call. Independent of enable_prefix_caching.
  // REQUIRES: the child holds no blocks, seq.num_computed_tokens == 0, and the parent's first
  // shared_tokens tokens equal seq's.
  ComputedBlocks GetForkedBlocks(RequestId parent, int32_t parent_computed_tokens, int32_t shared_tokens,
                                 const KvSequence& seq) const;

  // Makes the request's blocks cover num_computed_tokens + new_computed.num_tokens +
  // num_new_tokens tokens, first taking `new_computed` (from GetComputedBlocks in this step), then
  // allocating fresh blocks, evicting cached unreferenced ones LRU. Returns false, changing no
  // block, when there are not enough free blocks.
  bool AllocateSlots(const KvSequence& seq, int32_t num_new_tokens, const ComputedBlocks& new_computed = {});

  // Releases the request's blocks past the first NumBlocksFor(num_tokens), last block first
  // (speculative decoding: blocks that held only rejected draft tokens). Returns how many.
  // REQUIRES: seq.num_computed_tokens <= num_tokens.
  int32_t TrimSlots(const KvSequence& seq, int32_t num_tokens);

  // Caches the request's computed full blocks, then releases all its blocks, last block first.
  // A request holding no blocks is a no-op.
  void Free(const KvSequence& seq);

  // The request's block table; empty when it holds none. Valid until the next non-const call.
  absl::Span<const int32_t> GetBlockIds(RequestId id) const;
  bool HoldsBlocks(RequestId id) const { return requests_.contains(id); }
  // Requests holding `block` (tests: a block written in a step must have exactly one holder).
  int32_t BlockRefCount(int32_t block) const { return pool_.ref_count(block); }
  int32_t num_requests() const { return static_cast<int32_t>(requests_.size()); }

  KvCacheUsage usage() const;

  // Proves free + cached-unreferenced + in-use == total, that every block's reference count equals
  // the number of requests holding it, that no request holds a block twice or the null block, and
  // the free list and cache index are consistent.
  absl::Status CheckIntegrity() const;

 private:
  struct RequestBlocks {
    std::vector<int32_t> block_ids;
    size_t num_cached_blocks = 0;  // leading blocks already registered (or found) in the cache
  };

  explicit KvCacheManager(const KvCacheConfig& config);
  void CacheComputedBlocks(const KvSequence& seq, RequestBlocks* blocks);

  const KvCacheConfig config_;
  BlockPool pool_;
  absl::flat_hash_map<RequestId, RequestBlocks> requests_;
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_KV_KV_CACHE_MANAGER_H_
