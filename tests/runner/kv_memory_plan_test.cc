// KV cache sizing (server/runner/kv_memory_plan.h): the budget arithmetic, the profile step's
// batch, byte sizes, and PlanKvCache on the CPU (host budget) and on a CPU backend that reports
// made-up device memory (the measured path, without a GPU).

#include "server/runner/kv_memory_plan.h"

#include <algorithm>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/model/model.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;
constexpr int64_t kMiB = int64_t{1} << 20;

TEST(KvCacheMemoryBudgetTest, UtilizationMinusUsedMinusActivations) {
  auto b = KvCacheMemoryBudget({.total_bytes = 1000 * kMiB,
                                .used_bytes = 200 * kMiB,
                                .activation_peak_bytes = 30 * kMiB,
                                .gpu_memory_utilization = 0.9});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, 900 * kMiB - 200 * kMiB - 30 * kMiB);
}

TEST(KvCacheMemoryBudgetTest, GraphReserveComesOffLikeActivations) {
  auto b = KvCacheMemoryBudget({.total_bytes = 1000 * kMiB,
                                .used_bytes = 200 * kMiB,
                                .activation_peak_bytes = 30 * kMiB,
                                .graph_reserve_bytes = 30 * kMiB,
                                .gpu_memory_utilization = 0.9});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, 900 * kMiB - 200 * kMiB - 60 * kMiB);
}

TEST(KvCacheMemoryBudgetTest, ExplicitBudgetOverridesUtilizationButMustFit) {
  const KvMemoryBudgetInputs in{.total_bytes = 1000 * kMiB,
                                .used_bytes = 200 * kMiB,
                                .activation_peak_bytes = 30 * kMiB,
                                .gpu_memory_utilization = 0.5,
                                .kv_cache_memory_bytes = 700 * kMiB};
  auto b = KvCacheMemoryBudget(in);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, 700 * kMiB);  // above 0.5 x total, still fits in what is free
  KvMemoryBudgetInputs too_big = in;
  too_big.kv_cache_memory_bytes = 771 * kMiB;
  EXPECT_EQ(KvCacheMemoryBudget(too_big).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(KvCacheMemoryBudgetTest, NothingLeftIsResourceExhaustedNamingTheParts) {
  auto b = KvCacheMemoryBudget({.total_bytes = 1000 * kMiB,
                                .used_bytes = 850 * kMiB,
                                .activation_peak_bytes = 60 * kMiB,
                                .gpu_memory_utilization = 0.9});
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("activation peak"));
}

TEST(KvCacheMemoryBudgetTest, RejectsUtilizationOutsideUnitInterval) {
  for (double u : {0.0, -0.1, 1.01}) {
    EXPECT_EQ(KvCacheMemoryBudget({.total_bytes = kMiB, .gpu_memory_utilization = u}).status().code(),
              absl::StatusCode::kInvalidArgument)
        << u;
  }
}

TEST(ProfileForwardBatchTest, SplitsTokensOverSequencesOnDistinctBlocks) {
  int32_t blocks = 0;
  const ForwardBatch b = ProfileForwardBatch(/*num_tokens=*/10, /*num_seqs=*/3, /*max_seq_len=*/100,
                                             /*block_size=*/4, &blocks);
  EXPECT_EQ(b.num_tokens(), 10);
  ASSERT_EQ(b.num_seqs(), 3);
  EXPECT_EQ(b.seq_lens, (std::vector<int32_t>{4, 3, 3}));
  EXPECT_EQ(b.logits_indices.size(), 3u);  // every sequence samples
  EXPECT_EQ(blocks, 1 + 1 + 1 + 1);        // null block + one block each
  EXPECT_TRUE(b.Validate(blocks, 100).ok());
  for (int32_t slot : b.slot_mapping) EXPECT_GE(slot, 4);  // never the null block
}

TEST(ProfileForwardBatchTest, CapsTokensAtMaxSeqLenAndSeqsAtTokens) {
  int32_t blocks = 0;
  ForwardBatch b = ProfileForwardBatch(1000, 2, 16, 16, &blocks);
  EXPECT_EQ(b.num_tokens(), 32);
  EXPECT_TRUE(b.Validate(blocks, 16).ok());
  b = ProfileForwardBatch(5, 256, 64, 16, &blocks);
  EXPECT_EQ(b.num_seqs(), 5);
  EXPECT_EQ(blocks, 6);
}

TEST(ParseByteSizeTest, UnitsAndErrors) {
  EXPECT_EQ(*ParseByteSize("1000"), 1000);
  EXPECT_EQ(*ParseByteSize("512MiB"), 512 * kMiB);
  EXPECT_EQ(*ParseByteSize("1.5GiB"), 1536 * kMiB);
  EXPECT_EQ(*ParseByteSize(" 2g "), 2048 * kMiB);
  EXPECT_EQ(*ParseByteSize("4k"), 4096);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("GiB").ok());
  EXPECT_FALSE(ParseByteSize("3 parsecs").ok());
}

// A CPU backend that claims device memory: in use and peak move by fixed amounts around the
// profile step, so the plan's arithmetic can be checked end to end.
class FakeDeviceBackend : public CpuBackend {
 public:
  FakeDeviceBackend() : CpuBackend(1) {}
  absl::StatusOr<DeviceMemoryStats> MemoryStats() override {
    ++calls_;
    DeviceMemoryStats s;
    s.total_bytes = 1000 * kMiB;
    s.free_bytes = 780 * kMiB;
    s.cached_bytes = 20 * kMiB;  // reusable: not "used"
    s.in_use_bytes = 150 * kMiB;
    s.peak_in_use_bytes = marked_ ? 190 * kMiB : 150 * kMiB;
    return s;
  }
  void MarkMemory() override { marked_ = true; }
  int calls_ = 0;
  bool marked_ = false;
};

TEST(PlanKvCacheTest, HostBudgetOnTheCpu) {
  CpuBackend cpu(1);
  auto model = LoadModel((moeserve::testing::FixturesDir() / "models" / "llama").string(), &cpu);
  ASSERT_TRUE(model.ok()) << model.status();
  auto plan = PlanKvCache(model->get(), &cpu, {.block_size = 4, .host_kv_cache_memory_bytes = 4 * kMiB});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->profiled);
  EXPECT_EQ(plan->budget_bytes, 4 * kMiB);
  EXPECT_EQ(plan->layout.num_blocks, 4 * kMiB / (*model)->kv_cache_spec().bytes_per_block(4));
}

TEST(PlanKvCacheTest, ExplicitBlockCountIsTheLayoutAndTheModelTakesIt) {
  FakeDeviceBackend dev;  // even on a device, no profile step
  auto model = LoadModel((moeserve::testing::FixturesDir() / "models" / "llama").string(), &dev);
  ASSERT_TRUE(model.ok()) << model.status();
  auto plan = PlanKvCache(model->get(), &dev, {.block_size = 8, .num_blocks = 33});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(dev.marked_);
  EXPECT_EQ(plan->layout.block_size, 8);
  EXPECT_EQ(plan->layout.num_blocks, 33);
  EXPECT_EQ(plan->layout.spec, (*model)->kv_cache_spec());
  EXPECT_EQ(plan->layout.capacity_tokens(), 32 * 8);
  ASSERT_TRUE((*model)->AllocateKvCache(plan->layout).ok());
  EXPECT_EQ((*model)->kv_layout(), plan->layout);
  // A layout made for another model's cache row is refused.
  KvLayout other = plan->layout;
  other.spec.bytes_per_token_per_layer += 2;
  EXPECT_THAT(std::string((*model)->AllocateKvCache(other).message()), HasSubstr("spec"));
  EXPECT_THAT(std::string(PlanKvCache(model->get(), &dev, {.block_size = 0}).status().message()),
              HasSubstr("block_size"));
  EXPECT_THAT(std::string(PlanKvCache(model->get(), &dev, {.num_blocks = 1}).status().message()),
              HasSubstr("num_blocks"));
}

TEST(PlanKvCacheTest, AutoHostBudgetHoldsTheFullContextOrCapsIt) {
  CpuBackend cpu(1);
  auto model = LoadModel((moeserve::testing::FixturesDir() / "models" / "llama").string(), &cpu);
  ASSERT_TRUE(model.ok()) << model.status();
  const int64_t per_block = (*model)->kv_cache_spec().bytes_per_block(4);
  // Plenty available: one full context of 4096 tokens, at least 64 MiB.
  auto plan = PlanKvCache(model->get(), &cpu,
                          {.block_size = 4, .max_model_len = 4096, .host_available_bytes = int64_t{64} << 30});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->auto_sized);
  EXPECT_EQ(plan->budget_bytes, std::max<int64_t>(64 * kMiB, per_block * (4096 / 4 + 1)));
  EXPECT_EQ(plan->max_model_len, 4096);
  // A context far beyond a quarter of what is available: the budget is that quarter, and
  // max_model_len says what one request can hold.
  const int32_t huge = 1 << 30;
  plan = PlanKvCache(model->get(), &cpu, {.block_size = 4, .max_model_len = huge, .host_available_bytes = 1024 * kMiB});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->budget_bytes, 256 * kMiB);
  EXPECT_EQ(plan->layout.num_blocks, 256 * kMiB / per_block);
  EXPECT_EQ(plan->max_model_len, (plan->layout.num_blocks - 1) * 4);
  EXPECT_LT(plan->max_model_len, huge);
}

TEST(PlanKvCacheTest, MeasuredPathRunsTheProfileStep) {
  FakeDeviceBackend dev;
  auto model = LoadModel((moeserve::testing::FixturesDir() / "models" / "llama").string(), &dev);
  ASSERT_TRUE(model.ok()) << model.status();
  auto plan = PlanKvCache(model->get(), &dev,
                          {.block_size = 4,
                           .max_num_batched_tokens = 40,
                           .max_num_seqs = 8,
                           .max_model_len = 32,
                           .gpu_memory_utilization = 0.9});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->profiled);
  EXPECT_TRUE(dev.marked_);
  EXPECT_EQ(plan->activation_peak_bytes, 40 * kMiB);
  EXPECT_EQ(plan->used_bytes, 1000 * kMiB - 780 * kMiB - 20 * kMiB);
  EXPECT_EQ(plan->budget_bytes, 900 * kMiB - 200 * kMiB - 40 * kMiB);
  EXPECT_EQ(plan->layout.num_blocks, plan->budget_bytes / (*model)->kv_cache_spec().bytes_per_block(4));
  EXPECT_EQ((*model)->kv_layout().num_blocks, 1);  // the temporary cache is dropped
}

TEST(PlanKvCacheTest, CudaGraphsReserveAnotherActivationPeak) {
  FakeDeviceBackend dev;
  auto model = LoadModel((moeserve::testing::FixturesDir() / "models" / "llama").string(), &dev);
  ASSERT_TRUE(model.ok()) << model.status();
  auto plan = PlanKvCache(model->get(), &dev,
                          {.block_size = 4,
                           .max_num_batched_tokens = 40,
                           .max_num_seqs = 8,
                           .max_model_len = 32,
                           .gpu_memory_utilization = 0.9,
                           .reserve_graph_memory = true});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->graph_reserve_bytes, 40 * kMiB);
  EXPECT_EQ(plan->budget_bytes, 900 * kMiB - 200 * kMiB - 40 * kMiB - 40 * kMiB);
  EXPECT_THAT(plan->ToString(), HasSubstr("CUDA-graph reserve"));
}

}  // namespace
}  // namespace moeserve
