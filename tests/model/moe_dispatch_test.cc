// PlanMoeDispatch: which of a rank's tokens go to which ranks, and where their partial outputs
// come back (server/model/moe_dispatch.h). The collective itself runs in tests/dist (tp_parity).

#include "server/model/moe_dispatch.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moeserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// 8 experts on 4 ranks: rank p holds experts 2p and 2p + 1.
TEST(PlanMoeDispatchTest, EachTokenGoesOnceToEveryRankOfItsExperts) {
  const std::vector<int32_t> ids = {
      0, 1, 6,  // token 0: rank 0 (twice), rank 3
      5, 4, 2,  // token 1: rank 2 (twice), rank 1
      7, 6, 7,  // token 2: rank 3 only
  };
  absl::StatusOr<MoeDispatchPlan> plan = PlanMoeDispatch(ids, 3, 3, 3, 8, 4);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->send_rows, ElementsAre(1, 1, 1, 2));
  EXPECT_THAT(plan->send_index, ElementsAre(0, 1, 1, 0, 2));  // rank 0: t0; 1: t1; 2: t1; 3: t0, t2
  ASSERT_EQ(plan->rounds.size(), 2u);
  EXPECT_THAT(plan->rounds[0], ElementsAre(0, 1, 4));  // first partial output of each token
  EXPECT_THAT(plan->rounds[1], ElementsAre(3, 2, 5));  // second; token 2 has none: the zero row (5)
}

TEST(PlanMoeDispatchTest, PaddingRowsGoNowhere) {
  const std::vector<int32_t> ids = {3, 0, 3, 0};  // k = 1, 4 rows, 2 real
  absl::StatusOr<MoeDispatchPlan> plan = PlanMoeDispatch(ids, 4, 1, 2, 4, 2);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->send_rows, ElementsAre(1, 1));
  EXPECT_THAT(plan->send_index, ElementsAre(1, 0));
  ASSERT_EQ(plan->rounds.size(), 1u);
  EXPECT_THAT(plan->rounds[0], ElementsAre(1, 0, 2, 2));

  plan = PlanMoeDispatch(ids, 4, 1, 0, 4, 2);  // nothing real: nothing sent, nothing to add
  ASSERT_TRUE(plan.ok());
  EXPECT_THAT(plan->send_rows, ElementsAre(0, 0));
  EXPECT_TRUE(plan->send_index.empty());
  EXPECT_TRUE(plan->rounds.empty());
}

TEST(PlanMoeDispatchTest, RefusesBadIdsAndUnevenSplits) {
  EXPECT_THAT(std::string(PlanMoeDispatch(std::vector<int32_t>{8}, 1, 1, 1, 8, 4).status().message()),
              HasSubstr("expert id 8 of token 0 is outside [0, 8)"));
  EXPECT_THAT(std::string(PlanMoeDispatch(std::vector<int32_t>{0}, 1, 1, 1, 6, 4).status().message()),
              HasSubstr("6 experts do not split over 4 ranks"));
  EXPECT_FALSE(PlanMoeDispatch(std::vector<int32_t>{0, 1}, 1, 1, 1, 8, 4).ok());
}

}  // namespace
}  // namespace moeserve
