// CachingAllocator (server/backend/cuda/caching_allocator.h) over malloc: size classes, reuse,
// release and retry when out of memory, the peak/miss window the memory plan measures, and the
// private pools of CUDA-graph memory (blocks allocated in a pool are never handed to allocations
// outside it, even once freed, and survive ReleaseCached).

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "gtest/gtest.h"
#include "server/backend/cuda/caching_allocator.h"

namespace moeserve {
namespace {

CachingAllocator::RawOps MallocOps(int64_t* live, size_t limit = SIZE_MAX) {
  return {[live, limit](size_t n) -> void* {
            if (n > limit) return nullptr;
            ++*live;
            return std::malloc(n);
          },
          [live](void* p) {
            --*live;
            std::free(p);
          }};
}

TEST(CachingAllocatorTest, RoundsToSizeClasses) {
  EXPECT_EQ(CachingAllocator::RoundSize(0), 512u);
  EXPECT_EQ(CachingAllocator::RoundSize(513), 1024u);
  EXPECT_EQ(CachingAllocator::RoundSize((1 << 20) + 1), size_t{2} << 20);
  EXPECT_EQ(CachingAllocator::RoundSize((5 << 20) + 1), size_t{6} << 20);
}

TEST(CachingAllocatorTest, SteadyStateMakesNoRawAllocations) {
  int64_t live = 0;
  {
    CachingAllocator a(MallocOps(&live));
    for (int step = 0; step < 10; ++step) {
      std::vector<void*> blocks;
      for (size_t n : {100, 4096, 70000, 3 << 20}) blocks.push_back(a.Allocate(n));
      for (void* p : blocks) a.Free(p);
    }
    EXPECT_EQ(a.stats().raw_allocs, 4);
    EXPECT_EQ(a.stats().in_use_bytes, 0u);
    EXPECT_GT(a.stats().cached_bytes, 0u);
  }
  EXPECT_EQ(live, 0);  // the destructor returned every cached block
}

TEST(CachingAllocatorTest, DoesNotHandOutFarLargerBlocks) {
  int64_t live = 0;
  CachingAllocator a(MallocOps(&live));
  a.Free(a.Allocate(64 << 20));
  void* small = a.Allocate(1024);
  EXPECT_EQ(a.stats().raw_allocs, 2);
  a.Free(small);
}

TEST(CachingAllocatorTest, ReleasesCacheAndRetriesWhenOutOfMemory) {
  int64_t live = 0;
  size_t limit = SIZE_MAX;
  CachingAllocator a({[&](size_t n) -> void* {
                        if (live > 0 && limit != SIZE_MAX) return nullptr;  // one block fits
                        ++live;
                        return std::malloc(n);
                      },
                      [&](void* p) {
                        --live;
                        std::free(p);
                      }});
  limit = 1;
  a.Free(a.Allocate(1 << 20));    // cached
  void* p = a.Allocate(8 << 20);  // needs the cached block released first
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(a.stats().raw_frees, 1);
  a.Free(p);
}

TEST(CachingAllocatorTest, MarkMeasuresPeakAndMissesOfAWindow) {
  int64_t live = 0;
  CachingAllocator a(MallocOps(&live));
  void* weights = a.Allocate(8 << 20);  // stays in use
  void* warm = a.Allocate(4 << 20);     // a warm-up step's activation
  a.Free(warm);
  a.Mark();
  EXPECT_EQ(a.stats().peak_in_use_bytes, size_t{8} << 20);
  EXPECT_EQ(a.stats().raw_allocs_since_mark, 0);
  void* again = a.Allocate(4 << 20);  // cached: a hit
  EXPECT_EQ(a.stats().peak_in_use_bytes, size_t{12} << 20);
  EXPECT_EQ(a.stats().raw_allocs_since_mark, 0);
  void* miss = a.Allocate(1 << 10);
  EXPECT_EQ(a.stats().raw_allocs_since_mark, 1);
  a.Free(again);
  a.Free(miss);
  EXPECT_EQ(a.stats().peak_in_use_bytes, (size_t{12} << 20) + 1024);  // the peak stays
  a.Mark();
  EXPECT_EQ(a.stats().peak_in_use_bytes, size_t{8} << 20);
  a.Free(weights);
}

TEST(CachingAllocatorPoolTest, PoolBlocksStayInThePool) {
  int64_t live = 0;
  {
    CachingAllocator a(MallocOps(&live));
    const int pool = a.CreatePool();
    a.BeginPool(pool);
    void* graph_block = a.Allocate(4096);
    a.EndPool();
    a.Free(graph_block);  // freed outside the pool: back to the pool's list
    void* other = a.Allocate(4096);
    EXPECT_NE(other, graph_block);  // never handed to a non-pool allocation
    EXPECT_EQ(a.stats().raw_allocs, 2);
    a.BeginPool(pool);
    void* again = a.Allocate(4096);
    a.EndPool();
    EXPECT_EQ(again, graph_block);  // reused inside the pool
    EXPECT_EQ(a.pool_bytes(pool), 4096u);
    EXPECT_EQ(a.stats().pool_bytes, 4096u);
    a.Free(again);
    a.Free(other);
  }
  EXPECT_EQ(live, 0);
}

TEST(CachingAllocatorPoolTest, SharedCacheBlocksDoNotEnterThePool) {
  int64_t live = 0;
  CachingAllocator a(MallocOps(&live));
  a.Free(a.Allocate(1 << 20));  // cached in the shared cache
  const int pool = a.CreatePool();
  a.BeginPool(pool);
  void* p = a.Allocate(1 << 20);
  a.EndPool();
  EXPECT_EQ(a.stats().raw_allocs, 2);
  a.Free(p);
}

TEST(CachingAllocatorPoolTest, ReleaseCachedKeepsPoolsAndReleasePoolFreesThem) {
  int64_t live = 0;
  CachingAllocator a(MallocOps(&live));
  const int pool = a.CreatePool();
  a.BeginPool(pool);
  std::vector<void*> blocks = {a.Allocate(512), a.Allocate(8 << 20)};
  a.EndPool();
  void* shared = a.Allocate(1024);
  for (void* p : blocks) a.Free(p);
  a.Free(shared);
  a.ReleaseCached();
  EXPECT_EQ(live, 2);  // only the shared block went back
  EXPECT_EQ(a.pool_bytes(pool), 512u + (8u << 20));
  a.ReleasePool(pool);
  EXPECT_EQ(live, 0);
  EXPECT_EQ(a.pool_bytes(pool), 0u);
  EXPECT_EQ(a.stats().cached_bytes, 0u);
  EXPECT_EQ(a.stats().pool_bytes, 0u);
}

TEST(CachingAllocatorPoolTest, OutOfMemoryReleasesOnlyTheSharedCache) {
  int64_t live = 0;
  int64_t limit = 2;
  CachingAllocator a({[&](size_t n) -> void* {
                        if (live >= limit) return nullptr;
                        ++live;
                        return std::malloc(n);
                      },
                      [&](void* p) {
                        --live;
                        std::free(p);
                      }});
  const int pool = a.CreatePool();
  a.BeginPool(pool);
  a.Free(a.Allocate(4096));  // a graph's block, free in the pool
  a.EndPool();
  a.Free(a.Allocate(1 << 20));    // shared cache
  void* p = a.Allocate(8 << 20);  // needs a release: the shared block goes, the pool's stays
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(a.pool_bytes(pool), 4096u);
  a.Free(p);
}

}  // namespace
}  // namespace moeserve
