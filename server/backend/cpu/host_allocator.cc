#include "server/backend/cpu/host_allocator.h"

#include <algorithm>
#include <bit>
#include <cstdlib>

namespace moeserve::cpu {

std::shared_ptr<HostAllocator> HostAllocator::Create(int64_t max_cached_bytes) {
  return std::shared_ptr<HostAllocator>(new HostAllocator(max_cached_bytes));
}

HostAllocator::~HostAllocator() { Release(); }

size_t HostAllocator::RoundUp(size_t bytes) {
  bytes = std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  if (bytes < kMinCached) return bytes;
  // Eight steps per power of two: reuse across slightly different sizes, at most 1/8 waste.
  const size_t step = std::bit_floor(bytes) / 8;
  return (bytes + step - 1) / step * step;
}

std::shared_ptr<void> HostAllocator::Allocate(size_t bytes) {
  const size_t size = RoundUp(bytes);
  void* p = nullptr;
  if (size >= kMinCached) {
    absl::MutexLock lock(&mu_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= static_cast<int64_t>(size);
    }
  }
  if (p == nullptr) {
    p = std::aligned_alloc(kAlignment, size);
    if (p == nullptr) return nullptr;
    absl::MutexLock lock(&mu_);
    ++system_allocations_;
  }
  std::shared_ptr<HostAllocator> self = shared_from_this();
  return std::shared_ptr<void>(p, [self, size](void* q) { self->Free(q, size); });
}

void HostAllocator::Free(void* p, size_t size) {
  if (size >= kMinCached) {
    absl::MutexLock lock(&mu_);
    if (cached_bytes_ + static_cast<int64_t>(size) <= max_cached_bytes_) {
      free_[size].push_back(p);
      cached_bytes_ += static_cast<int64_t>(size);
      return;
    }
  }
  std::free(p);
}

void HostAllocator::Release() {
  absl::MutexLock lock(&mu_);
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) std::free(p);
  }
  free_.clear();
  cached_bytes_ = 0;
}

int64_t HostAllocator::cached_bytes() const {
  absl::MutexLock lock(&mu_);
  return cached_bytes_;
}

int64_t HostAllocator::system_allocations() const {
  absl::MutexLock lock(&mu_);
  return system_allocations_;
}

}  // namespace moeserve::cpu
