#include "server/backend/cuda/caching_allocator.h"

#include <algorithm>
#include <utility>

namespace moeserve {

CachingAllocator::CachingAllocator(RawOps ops) : ops_(std::move(ops)) {}

CachingAllocator::~CachingAllocator() {
  absl::MutexLock lock(&mu_);
  for (auto& [pool, list] : free_) ReleaseListLocked(&list);
}

size_t CachingAllocator::RoundSize(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  const size_t g = bytes < kSmallLimit ? kMinBlock : kLargeGranule;
  return (bytes + g - 1) / g * g;
}

void* CachingAllocator::Allocate(size_t bytes) {
  const size_t rounded = RoundSize(bytes);
  absl::MutexLock lock(&mu_);
  const int pool = active_pool_;
  FreeList& list = free_[pool];
  auto it = list.lower_bound(rounded);
  if (it != list.end() && Fits(it->first, rounded)) {
    const size_t size = it->first;
    void* p = it->second;
    list.erase(it);
    stats_.cached_bytes -= size;
    stats_.in_use_bytes += size;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    in_use_.emplace(p, Block{size, pool});
    return p;
  }
  void* p = ops_.alloc(rounded);
  if (p == nullptr) {
    // Only the shared cache is given back: pool blocks belong to captured graphs.
    ReleaseListLocked(&free_[0]);
    p = ops_.alloc(rounded);
    if (p == nullptr) return nullptr;
  }
  ++stats_.raw_allocs;
  ++stats_.raw_allocs_since_mark;
  stats_.in_use_bytes += rounded;
  stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
  if (pool != 0) {
    pool_bytes_[pool] += rounded;
    stats_.pool_bytes += rounded;
  }
  in_use_.emplace(p, Block{rounded, pool});
  return p;
}

void CachingAllocator::Free(void* p) {
  if (p == nullptr) return;
  absl::MutexLock lock(&mu_);
  auto it = in_use_.find(p);
  if (it == in_use_.end()) return;  // not ours: ignore rather than corrupt the pool
  const Block block = it->second;
  in_use_.erase(it);
  stats_.in_use_bytes -= block.size;
  stats_.cached_bytes += block.size;
  free_[block.pool].emplace(block.size, p);
}

void CachingAllocator::ReleaseCached() {
  absl::MutexLock lock(&mu_);
  ReleaseListLocked(&free_[0]);
}

void CachingAllocator::ReleaseListLocked(FreeList* list) {
  for (auto& [size, p] : *list) {
    ops_.free(p);
    ++stats_.raw_frees;
    stats_.cached_bytes -= size;
  }
  list->clear();
}

int CachingAllocator::CreatePool() {
  absl::MutexLock lock(&mu_);
  const int id = next_pool_++;
  pool_bytes_[id] = 0;
  return id;
}

void CachingAllocator::BeginPool(int id) {
  absl::MutexLock lock(&mu_);
  active_pool_ = id;
}

void CachingAllocator::EndPool() {
  absl::MutexLock lock(&mu_);
  active_pool_ = 0;
}

void CachingAllocator::ReleasePool(int id) {
  absl::MutexLock lock(&mu_);
  auto it = free_.find(id);
  if (it == free_.end() || id == 0) return;
  size_t freed = 0;
  for (auto& [size, p] : it->second) freed += size;
  ReleaseListLocked(&it->second);
  pool_bytes_[id] -= freed;
  stats_.pool_bytes -= freed;
}

size_t CachingAllocator::pool_bytes(int id) const {
  absl::MutexLock lock(&mu_);
  auto it = pool_bytes_.find(id);
  return it == pool_bytes_.end() ? 0 : it->second;
}

void CachingAllocator::Mark() {
  absl::MutexLock lock(&mu_);
  stats_.peak_in_use_bytes = stats_.in_use_bytes;
  stats_.raw_allocs_since_mark = 0;
}

CachingAllocator::Stats CachingAllocator::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace moeserve
