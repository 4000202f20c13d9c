#include "server/kv/kv_cache_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace moeserve {

absl::StatusOr<int32_t> NumKvBlocksForMemory(int64_t memory_budget_bytes, int64_t bytes_per_block) {
  if (bytes_per_block <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("KV bytes per block must be positive, got ", bytes_per_block));
  }
  const int64_t num_blocks = std::max<int64_t>(memory_budget_bytes, 0) / bytes_per_block;
  if (num_blocks < 2) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache memory budget of ", memory_budget_bytes, " bytes holds ",
                                                   num_blocks, " blocks of ", bytes_per_block,
                                                   " bytes; at least 2 are needed"));
  }
  return static_cast<int32_t>(std::min<int64_t>(num_blocks, INT32_MAX));
}

absl::StatusOr<std::unique_ptr<KvCacheManager>> KvCacheManager::Create(const KvCacheConfig& config) {
  if (config.block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("KV block_size must be at least 1, got ", config.block_size));
  }
  if (config.num_blocks < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV num_blocks must be at least 2 (one is the null block), got ", config.num_blocks));
  }
  return std::unique_ptr<KvCacheManager>(new KvCacheManager(config));
}

absl::StatusOr<std::unique_ptr<KvCacheManager>> KvCacheManager::Create(const KvLayout& layout,
                                                                       bool enable_prefix_caching) {
  return Create(KvCacheConfig{.num_blocks = layout.num_blocks,
                              .block_size = layout.block_size,
                              .enable_prefix_caching = enable_prefix_caching});
}

KvCacheManager::KvCacheManager(const KvCacheConfig& config) : config_(config), pool_(config.num_blocks) {}

int32_t KvCacheManager::NumBlocksFor(int64_t num_tokens) const {
  return static_cast<int32_t>((num_tokens + config_.block_size - 1) / config_.block_size);
}

ComputedBlocks KvCacheManager::GetComputedBlocks(const KvSequence& seq) {
  MS_CHECK(seq.block_hashes != nullptr);
  MS_CHECK(seq.num_computed_tokens == 0 && !requests_.contains(seq.id))
      << "GetComputedBlocks for request " << seq.id << " that already holds blocks";
  ComputedBlocks hit;
  if (!config_.enable_prefix_caching || seq.token_ids.empty()) return hit;
  // The last token is always computed, so at most (n - 1) / block_size blocks can be reused.
  const size_t max_blocks = (seq.token_ids.size() - 1) / config_.block_size;
  for (size_t i = 0; i < max_blocks; ++i) {
    ExtendBlockHashes(seq.token_ids, config_.block_size, seq.cache_salt, i + 1, seq.block_hashes);
    const std::optional<int32_t> block = pool_.Lookup((*seq.block_hashes)[i]);
    if (!block.has_value()) break;
    hit.block_ids.push_back(*block);
  }
  hit.num_tokens = static_cast<int32_t>(hit.block_ids.size()) * config_.block_size;
  return hit;
}

ComputedBlocks KvCacheManager::GetForkedBlocks(RequestId parent, int32_t parent_computed_tokens, int32_t shared_tokens,
                                               const KvSequence& seq) const {
  MS_CHECK(seq.num_computed_tokens == 0 && !requests_.contains(seq.id))
      << "GetForkedBlocks for request " << seq.id << " that already holds blocks";
  ComputedBlocks fork;
  fork.forked = true;
  auto it = requests_.find(parent);
  if (it == requests_.end() || seq.token_ids.empty()) return fork;
  const int64_t last_token = static_cast<int64_t>(seq.token_ids.size()) - 1;
  const int64_t tokens = std::min<int64_t>({parent_computed_tokens, shared_tokens, last_token});
  const size_t num_blocks =
      std::min<size_t>(std::max<int64_t>(tokens, 0) / config_.block_size, it->second.block_ids.size());
  fork.block_ids.assign(it->second.block_ids.begin(), it->second.block_ids.begin() + num_blocks);
  fork.num_tokens = static_cast<int32_t>(num_blocks) * config_.block_size;
  return fork;
}

void KvCacheManager::CacheComputedBlocks(const KvSequence& seq, RequestBlocks* blocks) {
  if (!config_.enable_prefix_caching) return;
  const size_t num_full = std::min<size_t>(seq.num_computed_tokens / config_.block_size, blocks->block_ids.size());
  if (blocks->num_cached_blocks >= num_full) return;
  ExtendBlockHashes(seq.token_ids, config_.block_size, seq.cache_salt, num_full, seq.block_hashes);
  for (size_t i = blocks->num_cached_blocks; i < num_full; ++i) {
    // A duplicate (another request computed the same block concurrently) stays uncached.
    pool_.Cache(blocks->block_ids[i], (*seq.block_hashes)[i]);
  }
  blocks->num_cached_blocks = num_full;
}

bool KvCacheManager::AllocateSlots(const KvSequence& seq, int32_t num_new_tokens, const ComputedBlocks& new_computed) {
  MS_CHECK(seq.block_hashes != nullptr);
  MS_CHECK(num_new_tokens >= 0);
  auto it = requests_.find(seq.id);
  const bool fresh = it == requests_.end();
  MS_CHECK(new_computed.block_ids.empty() || (fresh && seq.num_computed_tokens == 0))
      << "computed blocks given to request " << seq.id << " that already holds blocks";
  const size_t held = fresh ? 0 : it->second.block_ids.size();
  if (!fresh) CacheComputedBlocks(seq, &it->second);

  const int64_t total_tokens = int64_t{seq.num_computed_tokens} + new_computed.num_tokens + num_new_tokens;
  const int32_t needed = NumBlocksFor(total_tokens);
  const int32_t num_to_allocate =
      std::max<int32_t>(0, needed - static_cast<int32_t>(held + new_computed.block_ids.size()));
  // Prefix hits that sit unreferenced in the free list leave it when taken.
  int32_t num_hits_in_free_list = 0;
  for (int32_t block : new_computed.block_ids) {
    if (pool_.ref_count(block) == 0) ++num_hits_in_free_list;
  }
  if (num_to_allocate + num_hits_in_free_list > pool_.num_free_blocks()) return false;

  if (fresh) {
    if (needed == 0) return true;
    it = requests_.try_emplace(seq.id).first;
    if (!new_computed.forked) {
      prefix_query_tokens_ += static_cast<int64_t>(seq.token_ids.size());
      prefix_hit_tokens_ += new_computed.num_tokens;
    }
  }
  RequestBlocks& blocks = it->second;
  for (int32_t block : new_computed.block_ids) {
    pool_.Acquire(block);
    blocks.block_ids.push_back(block);
  }
  // Forked blocks may not be registered yet: the child registers them itself (duplicates are
  // no-ops).
  if (!new_computed.forked) blocks.num_cached_blocks += new_computed.block_ids.size();
  pool_.Allocate(num_to_allocate, &blocks.block_ids);
  return true;
}

int32_t KvCacheManager::TrimSlots(const KvSequence& seq, int32_t num_tokens) {
  MS_CHECK(seq.num_computed_tokens <= num_tokens) << "TrimSlots for request " << seq.id << " below its computed tokens";
  auto it = requests_.find(seq.id);
  if (it == requests_.end()) return 0;
  RequestBlocks& blocks = it->second;
  // Keep at least one block: a tracked request never holds none.
  const size_t keep = std::max<size_t>(1, NumBlocksFor(num_tokens));
  int32_t released = 0;
  while (blocks.block_ids.size() > keep) {
    pool_.Release(blocks.block_ids.back());
    blocks.block_ids.pop_back();
    ++released;
  }
  blocks.num_cached_blocks = std::min(blocks.num_cached_blocks, blocks.block_ids.size());
  return released;
}

void KvCacheManager::Free(const KvSequence& seq) {
  auto it = requests_.find(seq.id);
  if (it == requests_.end()) return;
  CacheComputedBlocks(seq, &it->second);
  const std::vector<int32_t>& block_ids = it->second.block_ids;
  for (auto b = block_ids.rbegin(); b != block_ids.rend(); ++b) pool_.Release(*b);
  requests_.erase(it);
}

absl::Span<const int32_t> KvCacheManager::GetBlockIds(RequestId id) const {
  auto it = requests_.find(id);
  if (it == requests_.end()) return {};
  return it->second.block_ids;
}

KvCacheUsage KvCacheManager::usage() const {
  KvCacheUsage usage;
  usage.num_blocks = pool_.num_usable_blocks();
  usage.num_used_blocks = pool_.num_used_blocks();
  usage.num_free_blocks = pool_.num_free_blocks();
  usage.num_cached_free_blocks = pool_.num_cached_free_blocks();
  usage.prefix_query_tokens = prefix_query_tokens_;
  usage.prefix_hit_tokens = prefix_hit_tokens_;
  return usage;
}

absl::Status KvCacheManager::CheckIntegrity() const {
  if (absl::Status status = pool_.CheckIntegrity(); !status.ok()) return status;
  std::vector<int32_t> holders(pool_.num_blocks(), 0);
  for (const auto& [id, blocks] : requests_) {
    if (blocks.block_ids.empty()) {
      return absl::InternalError(absl::StrCat("request ", id, " is tracked with no blocks"));
    }
    if (blocks.num_cached_blocks > blocks.block_ids.size()) {
      return absl::InternalError(absl::StrCat("request ", id, " caches more blocks than it has"));
    }
    for (int32_t block : blocks.block_ids) {
      if (block <= BlockPool::kNullBlock || block >= pool_.num_blocks()) {
        return absl::InternalError(absl::StrCat("request ", id, " holds invalid block ", block));
      }
      ++holders[block];
    }
    absl::flat_hash_map<int32_t, int> seen;
    for (int32_t block : blocks.block_ids) {
      if (++seen[block] > 1) {
        return absl::InternalError(absl::StrCat("request ", id, " holds block ", block, " twice"));
      }
    }
  }
  for (int32_t b = 1; b < pool_.num_blocks(); ++b) {
    if (holders[b] != pool_.ref_count(b)) {
      return absl::InternalError(
          absl::StrCat("block ", b, " has ref count ", pool_.ref_count(b), " but ", holders[b], " holders"));
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve
