#ifndef MOESERVE_SERVER_KV_BLOCK_POOL_H_
#define MOESERVE_SERVER_KV_BLOCK_POOL_H_

// BlockPool: the ids of a fixed number of KV blocks, their reference counts, the free list and the
// prefix-cache index. Knows nothing about tensors: the model runner maps a block id to its slots.
//
// Block 0 is the reserved null block: never allocated, never freed, used by the model runner as
// padding in block tables. Every other block is in exactly one state:
//   in use             ref count > 0 (may also carry a cache key and be shared by prefix hits);
//   cached, unreferenced  ref count 0, carries a cache key, still in the free list;
//   free               ref count 0, no key.
// The free list holds every unreferenced block, least recently released first. Allocation takes
// from the front, so a cached block is evicted (its key dropped) only when no older free block is
// left: LRU eviction.
//
// Requires external synchronization (owned by the engine thread).

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "server/kv/block_hash.h"

namespace moeserve {

class BlockPool {
 public:
  static constexpr int32_t kNullBlock = 0;

  // REQUIRES: num_blocks >= 2 (the null block and at least one usable block).
  explicit BlockPool(int32_t num_blocks);

  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }  // with null
  int32_t num_usable_blocks() const { return num_blocks() - 1; }
  // Unreferenced blocks, cached or not: how many Allocate() can hand out.
  int32_t num_free_blocks() const { return num_free_; }
  int32_t num_cached_free_blocks() const { return num_cached_free_; }
  int32_t num_used_blocks() const { return num_usable_blocks() - num_free_; }

  int32_t ref_count(int32_t block) const { return blocks_[block].ref_count; }
  bool is_cached(int32_t block) const { return blocks_[block].cached; }

  // The block registered under `hash`, if any (referenced or not).
  std::optional<int32_t> Lookup(const BlockHash& hash) const;

  // Takes `n` blocks from the front of the free list, drops their cache keys and gives each a
  // reference count of 1. REQUIRES: n <= num_free_blocks().
  void Allocate(int32_t n, std::vector<int32_t>* out);

  // Adds a reference; an unreferenced block leaves the free list (a prefix hit).
  // REQUIRES: block is not the null block.
  void Acquire(int32_t block);

  // Drops a reference; at zero the block goes to the back of the free list, keeping its key.
  // REQUIRES: ref_count(block) > 0.
  void Release(int32_t block);

  // Registers `block` (in use, fully computed) under `hash`. Does nothing and returns false when
  // the block already has a key or another block holds this one.
  bool Cache(int32_t block, const BlockHash& hash);

  // Verifies the free list, the counters and the cache index against each other. Reference counts
  // against their holders are checked by KvCacheManager.
  absl::Status CheckIntegrity() const;

 private:
  struct Block {
    int32_t ref_count = 0;
    int32_t prev = -1;  // free-list links, -1 at the ends
    int32_t next = -1;
    bool in_free_list = false;
    bool cached = false;
    BlockHash hash{};
  };

  void PushBack(int32_t block);
  void Unlink(int32_t block);

  std::vector<Block> blocks_;
  int32_t free_head_ = -1;
  int32_t free_tail_ = -1;
  int32_t num_free_ = 0;
  int32_t num_cached_free_ = 0;
  absl::flat_hash_map<BlockHash, int32_t, BlockHashHasher> cached_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_KV_BLOCK_POOL_H_
