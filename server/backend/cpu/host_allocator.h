#ifndef MOESERVE_SERVER_BACKEND_CPU_HOST_ALLOCATOR_H_
#define MOESERVE_SERVER_BACKEND_CPU_HOST_ALLOCATOR_H_

// 64-byte aligned host blocks for the CPU backend's tensors, with freed blocks kept for reuse.
//
// A model step allocates the same activation shapes every step; fresh allocations of large blocks
// come from mmap and cost a page fault per 4 KiB each step. Freed blocks of at least kMinCached
// bytes are kept in per-size lists (sizes rounded up to a power-of-two fraction: at most 1/8
// waste) and handed out again, up to max_cached_bytes in total; smaller blocks go straight back to
// malloc, which already recycles them. This is the step arena: after the first step of a given
// shape, steps allocate nothing from the system.
//
// Thread-safe: blocks may be freed on any thread (a Tensor outlives the step that made it).

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moeserve::cpu {

class HostAllocator : public std::enable_shared_from_this<HostAllocator> {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kMinCached = 64 * 1024;

  static std::shared_ptr<HostAllocator> Create(int64_t max_cached_bytes);
  ~HostAllocator();
  HostAllocator(const HostAllocator&) = delete;
  HostAllocator& operator=(const HostAllocator&) = delete;

  // A block of at least `bytes` (never null unless out of memory; 0 bytes gives a small block),
  // freed through the returned pointer's deleter (back into the cache when it fits there). The
  // deleter keeps this allocator alive.
  std::shared_ptr<void> Allocate(size_t bytes);

  // Returns every cached block to the system.
  void Release();

  int64_t cached_bytes() const;
  int64_t system_allocations() const;  // blocks taken from the system since creation

 private:
  explicit HostAllocator(int64_t max_cached_bytes) : max_cached_bytes_(max_cached_bytes) {}
  static size_t RoundUp(size_t bytes);
  void Free(void* p, size_t size);

  const int64_t max_cached_bytes_;
  mutable absl::Mutex mu_;
  std::map<size_t, std::vector<void*>> free_ ABSL_GUARDED_BY(mu_);  // rounded size -> blocks
  int64_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t system_allocations_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace moeserve::cpu

#endif  // MOESERVE_SERVER_BACKEND_CPU_HOST_ALLOCATOR_H_
