// CachingAllocator's private pools (CUDA-graph memory): blocks allocated in a pool are never handed
// to allocations outside it, even once freed, and survive ReleaseCached.

#include <cstdlib>
#include <vector>

#include "gtest/gtest.h"
#include "server/backend/cuda/caching_allocator.h"

namespace moeserve {
namespace {

CachingAllocator::RawOps CountingOps(int64_t* live) {
  return {[live](size_t n) -> void* {
            ++*live;
            return std::malloc(n);
          },
          [live](void* p) {
            --*live;
            std::free(p);
          }};
}

TEST(CachingAllocatorPoolTest, PoolBlocksStayInThePool) {
  int64_t live = 0;
  {
    CachingAllocator a(CountingOps(&live));
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
  CachingAllocator a(CountingOps(&live));
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
  CachingAllocator a(CountingOps(&live));
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
  a.Free(a.Allocate(1 << 20));  // shared cache
  void* p = a.Allocate(8 << 20);  // needs a release: the shared block goes, the pool's stays
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(a.pool_bytes(pool), 4096u);
  a.Free(p);
}

}  // namespace
}  // namespace moeserve
