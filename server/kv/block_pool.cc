#include "server/kv/block_pool.h"

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace moeserve {

BlockPool::BlockPool(int32_t num_blocks) : blocks_(num_blocks) {
  MS_CHECK(num_blocks >= 2) << "a block pool needs the null block and one more, got " << num_blocks;
  for (int32_t b = 1; b < num_blocks; ++b) PushBack(b);
}

void BlockPool::PushBack(int32_t block) {
  Block& b = blocks_[block];
  b.prev = free_tail_;
  b.next = -1;
  if (free_tail_ >= 0) {
    blocks_[free_tail_].next = block;
  } else {
    free_head_ = block;
  }
  free_tail_ = block;
  b.in_free_list = true;
  ++num_free_;
  if (b.cached) ++num_cached_free_;
}

void BlockPool::Unlink(int32_t block) {
  Block& b = blocks_[block];
  if (b.prev >= 0) {
    blocks_[b.prev].next = b.next;
  } else {
    free_head_ = b.next;
  }
  if (b.next >= 0) {
    blocks_[b.next].prev = b.prev;
  } else {
    free_tail_ = b.prev;
  }
  b.prev = b.next = -1;
  b.in_free_list = false;
  --num_free_;
  if (b.cached) --num_cached_free_;
}

std::optional<int32_t> BlockPool::Lookup(const BlockHash& hash) const {
  auto it = cached_.find(hash);
  if (it == cached_.end()) return std::nullopt;
  return it->second;
}

void BlockPool::Allocate(int32_t n, std::vector<int32_t>* out) {
  MS_CHECK(n <= num_free_) << "allocating " << n << " blocks with " << num_free_ << " free";
  for (int32_t i = 0; i < n; ++i) {
    const int32_t block = free_head_;
    Unlink(block);
    Block& b = blocks_[block];
    if (b.cached) {  // evict
      cached_.erase(b.hash);
      b.cached = false;
    }
    b.ref_count = 1;
    out->push_back(block);
  }
}

void BlockPool::Acquire(int32_t block) {
  MS_CHECK(block != kNullBlock);
  Block& b = blocks_[block];
  if (b.ref_count == 0) Unlink(block);
  ++b.ref_count;
}

void BlockPool::Release(int32_t block) {
  Block& b = blocks_[block];
  MS_CHECK(b.ref_count > 0) << "block " << block << " released more often than acquired";
  if (--b.ref_count == 0) PushBack(block);
}

bool BlockPool::Cache(int32_t block, const BlockHash& hash) {
  Block& b = blocks_[block];
  MS_CHECK(b.ref_count > 0) << "caching unreferenced block " << block;
  if (b.cached) return false;
  if (!cached_.emplace(hash, block).second) return false;
  b.cached = true;
  b.hash = hash;
  return true;
}

absl::Status BlockPool::CheckIntegrity() const {
  if (blocks_[kNullBlock].in_free_list || blocks_[kNullBlock].ref_count != 0 || blocks_[kNullBlock].cached) {
    return absl::InternalError("the null block was allocated, freed or cached");
  }
  int32_t listed = 0;
  int32_t listed_cached = 0;
  int32_t prev = -1;
  for (int32_t b = free_head_; b >= 0; b = blocks_[b].next) {
    if (b == kNullBlock || b >= num_blocks()) {
      return absl::InternalError(absl::StrCat("free list holds invalid block ", b));
    }
    const Block& block = blocks_[b];
    if (!block.in_free_list || block.ref_count != 0 || block.prev != prev) {
      return absl::InternalError(absl::StrCat("free list corrupt at block ", b, " (ref count ", block.ref_count, ")"));
    }
    if (++listed > num_usable_blocks()) return absl::InternalError("free list has a cycle");
    if (block.cached) ++listed_cached;
    prev = b;
  }
  if (prev != free_tail_) return absl::InternalError("free list tail is wrong");
  if (listed != num_free_ || listed_cached != num_cached_free_) {
    return absl::InternalError(absl::StrCat("free list holds ", listed, " blocks (", listed_cached,
                                            " cached); counters say ", num_free_, " (", num_cached_free_, ")"));
  }
  int32_t num_in_use = 0;
  int32_t num_cached = 0;
  for (int32_t b = 1; b < num_blocks(); ++b) {
    const Block& block = blocks_[b];
    if (block.ref_count < 0) {
      return absl::InternalError(absl::StrCat("block ", b, " has a negative ref count"));
    }
    if ((block.ref_count == 0) != block.in_free_list) {
      return absl::InternalError(absl::StrCat("block ", b, " with ref count ", block.ref_count,
                                              (block.in_free_list ? " is" : " is not"), " in the free list"));
    }
    if (block.ref_count > 0) ++num_in_use;
    if (block.cached) {
      ++num_cached;
      auto it = cached_.find(block.hash);
      if (it == cached_.end() || it->second != b) {
        return absl::InternalError(absl::StrCat("block ", b, " is cached but not indexed"));
      }
    }
  }
  if (num_cached != static_cast<int32_t>(cached_.size())) {
    return absl::InternalError("the cache index names blocks that are not cached");
  }
  const int32_t num_free_uncached = num_free_ - num_cached_free_;
  if (num_free_uncached + num_cached_free_ + num_in_use != num_usable_blocks()) {
    return absl::InternalError(absl::StrCat("free ", num_free_uncached, " + cached unreferenced ", num_cached_free_,
                                            " + in use ", num_in_use, " != total ", num_usable_blocks()));
  }
  return absl::OkStatus();
}

}  // namespace moeserve
