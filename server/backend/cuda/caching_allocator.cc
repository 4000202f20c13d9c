#include "server/backend/cuda/caching_allocator.h"

#include <algorithm>
#include <utility>

namespace moeserve {

CachingAllocator::CachingAllocator(RawOps ops) : ops_(std::move(ops)) {}

CachingAllocator::~CachingAllocator() {
  absl::MutexLock lock(&mu_);
  ReleaseCachedLocked();
}

size_t CachingAllocator::RoundSize(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  const size_t g = bytes < kSmallLimit ? kMinBlock : kLargeGranule;
  return (bytes + g - 1) / g * g;
}

void* CachingAllocator::Allocate(size_t bytes) {
  const size_t rounded = RoundSize(bytes);
  absl::MutexLock lock(&mu_);
  auto it = free_.lower_bound(rounded);
  if (it != free_.end() && Fits(it->first, rounded)) {
    const size_t size = it->first;
    void* p = it->second;
    free_.erase(it);
    stats_.cached_bytes -= size;
    stats_.in_use_bytes += size;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    in_use_.emplace(p, size);
    return p;
  }
  void* p = ops_.alloc(rounded);
  if (p == nullptr) {
    ReleaseCachedLocked();
    p = ops_.alloc(rounded);
    if (p == nullptr) return nullptr;
  }
  ++stats_.raw_allocs;
  ++stats_.raw_allocs_since_mark;
  stats_.in_use_bytes += rounded;
  stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
  in_use_.emplace(p, rounded);
  return p;
}

void CachingAllocator::Free(void* p) {
  if (p == nullptr) return;
  absl::MutexLock lock(&mu_);
  auto it = in_use_.find(p);
  if (it == in_use_.end()) return;  // not ours: ignore rather than corrupt the pool
  const size_t size = it->second;
  in_use_.erase(it);
  stats_.in_use_bytes -= size;
  stats_.cached_bytes += size;
  free_.emplace(size, p);
}

void CachingAllocator::ReleaseCached() {
  absl::MutexLock lock(&mu_);
  ReleaseCachedLocked();
}

void CachingAllocator::ReleaseCachedLocked() {
  for (auto& [size, p] : free_) {
    ops_.free(p);
    ++stats_.raw_frees;
  }
  free_.clear();
  stats_.cached_bytes = 0;
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
