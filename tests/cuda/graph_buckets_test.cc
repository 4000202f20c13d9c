// The CUDA-graph decode buckets (server/backend/cuda/graph_buckets.h).

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cuda/graph_buckets.h"

namespace moeserve {
namespace {

using ::testing::ElementsAre;

TEST(GraphBucketsTest, PowersOfTwoThenEveryEight) {
  EXPECT_THAT(cuda_graphs::DecodeBuckets(32), ElementsAre(1, 2, 4, 8, 16, 24, 32));
  EXPECT_THAT(cuda_graphs::DecodeBuckets(20), ElementsAre(1, 2, 4, 8, 16, 20));
  EXPECT_THAT(cuda_graphs::DecodeBuckets(3), ElementsAre(1, 2, 3));
  EXPECT_EQ(cuda_graphs::DecodeBuckets(256).size(), 3u + 32u);
}

TEST(GraphBucketsTest, ChoosesSmallestFittingBucketElseEager) {
  const std::vector<int32_t> b = cuda_graphs::DecodeBuckets(256);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 1), 1);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 3), 4);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 9), 16);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 256), 256);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 257), -1);
  EXPECT_EQ(cuda_graphs::ChooseBucket(b, 0), -1);
}

}  // namespace
}  // namespace moeserve
