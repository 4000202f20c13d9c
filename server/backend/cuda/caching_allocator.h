#ifndef MOESERVE_SERVER_BACKEND_CUDA_CACHING_ALLOCATOR_H_
#define MOESERVE_SERVER_BACKEND_CUDA_CACHING_ALLOCATOR_H_

// A size-class caching allocator over a raw allocator (cudaMalloc/cudaFree in the CUDA backend,
// malloc/free in tests). Freed blocks are kept and handed out again for requests of a close size,
// so a steady-state step allocates nothing from the device. When the raw allocator fails, every
// cached block is released and the allocation retried once.
//
// Safe to reuse a freed block for later work only when all device work is ordered on one stream
// (the CUDA backend's case): a kernel queued after the reuse runs after every kernel that used the
// block before.
//
// Private pools (for CUDA graphs): between BeginPool(id) and EndPool() every allocation comes from
// pool `id`, whose blocks are never handed to allocations outside the pool, even after they are
// freed (a freed pool block goes back to its pool's own free list). A captured graph keeps using
// the addresses it was captured with, so its blocks must stay out of everyone else's reach between
// replays; graphs that never run concurrently may share one pool (their intermediate blocks
// overlap, as the stream orders them). ReleaseCached() keeps pool blocks; ReleasePool() returns a
// pool's free blocks.
//
// Thread safety: safe for concurrent use (Tensors may be released on any thread). The active pool
// is one per allocator, not per thread: only one thread (the engine thread) may allocate while a
// pool is active.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moeserve {

class CachingAllocator {
 public:
  struct RawOps {
    std::function<void*(size_t)> alloc;  // returns nullptr when out of memory
    std::function<void(void*)> free;
  };
  struct Stats {
    size_t in_use_bytes = 0;
    size_t cached_bytes = 0;
    int64_t raw_allocs = 0;
    int64_t raw_frees = 0;
    // Highest in_use_bytes since construction or the last Mark().
    size_t peak_in_use_bytes = 0;
    // Raw allocations since the last Mark(): after warm-up these are cache misses (a steady-state
    // step should cause none).
    int64_t raw_allocs_since_mark = 0;
    // Bytes owned by private pools (in use or free there); included in in_use/cached above.
    size_t pool_bytes = 0;
  };

  static constexpr size_t kMinBlock = 512;
  static constexpr size_t kSmallLimit = size_t{1} << 20;  // rounded to 512 bytes below, 2 MiB above
  static constexpr size_t kLargeGranule = size_t{2} << 20;

  explicit CachingAllocator(RawOps ops);
  // Returns cached blocks to the raw allocator. REQUIRES: no block in use.
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes` (never null for bytes == 0), or nullptr when out of memory.
  void* Allocate(size_t bytes);
  // REQUIRES: p came from Allocate and was not freed since.
  void Free(void* p);
  // Returns every cached (free) block to the raw allocator.
  void ReleaseCached();
  // Starts a measurement window: peak_in_use_bytes restarts at the current in_use_bytes and
  // raw_allocs_since_mark at zero.
  void Mark();
  Stats stats() const;

  // A new private pool id (> 0).
  int CreatePool();
  // Allocations go to pool `id` until EndPool(). REQUIRES: id from CreatePool, no pool active.
  void BeginPool(int id);
  void EndPool();
  // Returns pool `id`'s free blocks to the raw allocator (its blocks in use stay in the pool).
  void ReleasePool(int id);
  // Bytes owned by pool `id` (in use or free).
  size_t pool_bytes(int id) const;

  // The size class of a request.
  static size_t RoundSize(size_t bytes);
  // Whether a cached block of `block` bytes may serve a request rounded to `rounded` bytes
  // (at most 1/8 + one small block of waste).
  static bool Fits(size_t block, size_t rounded) {
    return block >= rounded && block - rounded <= rounded / 8 + kMinBlock;
  }

 private:
  struct Block {
    size_t size = 0;
    int pool = 0;  // 0: the shared cache
  };
  // Free blocks of one pool (0: the shared cache) by size.
  using FreeList = std::multimap<size_t, void*>;

  void ReleaseListLocked(FreeList* list) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  RawOps ops_;
  mutable absl::Mutex mu_;
  std::map<int, FreeList> free_ ABSL_GUARDED_BY(mu_);
  std::map<int, size_t> pool_bytes_ ABSL_GUARDED_BY(mu_);  // per private pool
  std::unordered_map<void*, Block> in_use_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
  int active_pool_ ABSL_GUARDED_BY(mu_) = 0;
  int next_pool_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_CUDA_CACHING_ALLOCATOR_H_
