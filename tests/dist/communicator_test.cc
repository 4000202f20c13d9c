// The communicators of server/dist on real MPI ranks: CTest runs this binary alone (a singleton MPI
// job) and under `mpirun -np 2` and `-np 4`. Every rank runs every test in the same order, so the
// collectives of a test meet; values are small integers, so sums are exact in fp32.

#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/dist/mpi_communicator.h"
#include "server/dist/registry.h"
#include "server/dist/single_communicator.h"
#include "server/dist/timed_communicator.h"
#include "tests/dist/mpi_test_main.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;

const MpiRuntime* g_runtime = nullptr;  // made in main, before the tests

class MpiCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto comm = CreateMpiCommunicator(*g_runtime, {.backend = &cpu_, .timeout = absl::Seconds(60)});
    ASSERT_TRUE(comm.ok()) << comm.status();
    comm_ = std::move(*comm);
    rank_ = comm_->rank();
    n_ = comm_->world_size();
  }

  Tensor F32(std::vector<float> values, Shape shape) {
    auto t = cpu_.Allocate(DType::kF32, shape);
    EXPECT_TRUE(t.ok());
    std::memcpy(t->data(), values.data(), values.size() * sizeof(float));
    return *t;
  }
  std::vector<float> Values(const Tensor& t) {
    const float* p = t.data_as<float>();
    return std::vector<float>(p, p + t.numel());
  }

  CpuBackend cpu_{1};
  std::unique_ptr<Communicator> comm_;
  int rank_ = 0, n_ = 1;
};

TEST_F(MpiCommunicatorTest, RanksAreTheLaunchersRanks) {
  EXPECT_EQ(comm_->name(), "mpi");
  EXPECT_EQ(rank_, g_runtime->rank());
  EXPECT_EQ(n_, g_runtime->world_size());
  EXPECT_GE(g_runtime->local_rank(), 0);
  EXPECT_LT(g_runtime->local_rank(), g_runtime->local_size());
}

TEST_F(MpiCommunicatorTest, AllReduceSumsEveryRankInPlace) {
  std::vector<float> v(37);
  for (int i = 0; i < 37; ++i) v[i] = static_cast<float>(rank_ * 100 + i);
  Tensor x = F32(v, {37});
  ASSERT_TRUE(comm_->AllReduce(x).ok());
  const float rank_sum = 100.0f * n_ * (n_ - 1) / 2;
  for (int i = 0; i < 37; ++i) EXPECT_EQ(Values(x)[i], rank_sum + n_ * i) << i;
}

TEST_F(MpiCommunicatorTest, AllReduceI64AndRefusesBf16) {
  auto x = cpu_.Allocate(DType::kI64, {2});
  x->data_as<int64_t>()[0] = rank_;
  x->data_as<int64_t>()[1] = int64_t{1} << 40;
  ASSERT_TRUE(comm_->AllReduce(*x).ok());
  EXPECT_EQ(x->data_as<int64_t>()[0], int64_t{n_} * (n_ - 1) / 2);
  EXPECT_EQ(x->data_as<int64_t>()[1], int64_t{n_} << 40);
  auto h = cpu_.Allocate(DType::kBF16, {4});
  EXPECT_TRUE(absl::IsUnimplemented(comm_->AllReduce(*h)));
}

TEST_F(MpiCommunicatorTest, AllGatherConcatenatesInRankOrder) {
  Tensor in = F32({static_cast<float>(rank_), 1, 2, static_cast<float>(10 * rank_), 3, 4}, {2, 3});
  auto out = cpu_.Allocate(DType::kF32, {2 * n_, 3});
  ASSERT_TRUE(comm_->AllGather(in, *out).ok());
  const std::vector<float> all = Values(*out);
  for (int r = 0; r < n_; ++r) {
    const std::vector<float> got(all.begin() + 6 * r, all.begin() + 6 * r + 6);
    EXPECT_EQ(got, (std::vector<float>{static_cast<float>(r), 1, 2, static_cast<float>(10 * r), 3, 4}));
  }
}

TEST_F(MpiCommunicatorTest, ReduceScatterGivesEachRankItsRowsOfTheSum) {
  std::vector<float> v(2 * n_ * 2);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i + rank_);
  Tensor in = F32(v, {2 * n_, 2});
  auto out = cpu_.Allocate(DType::kF32, {2, 2});
  ASSERT_TRUE(comm_->ReduceScatter(in, *out).ok());
  for (int i = 0; i < 4; ++i) {
    const int global = 4 * rank_ + i;
    EXPECT_EQ(Values(*out)[i], n_ * global + n_ * (n_ - 1) / 2.0f) << i;
  }
}

// Rank r sends (r + p) % 3 rows to rank p (some zero): each row is (source, destination, k).
TEST_F(MpiCommunicatorTest, AllToAllMovesUnevenRowsBetweenEveryPair) {
  auto rows = [](int from, int to) { return static_cast<int64_t>((from + to) % 3); };
  std::vector<int64_t> send(n_), recv(n_);
  std::vector<float> v;
  for (int p = 0; p < n_; ++p) {
    send[p] = rows(rank_, p);
    recv[p] = rows(p, rank_);
    for (int k = 0; k < send[p]; ++k) v.insert(v.end(), {static_cast<float>(rank_), static_cast<float>(p), float(k)});
  }
  const int64_t total_in = std::accumulate(send.begin(), send.end(), int64_t{0});
  const int64_t total_out = std::accumulate(recv.begin(), recv.end(), int64_t{0});
  Tensor in = total_in > 0 ? F32(v, {total_in, 3}) : *cpu_.Allocate(DType::kF32, {0, 3});
  auto out = cpu_.Allocate(DType::kF32, {total_out, 3});
  ASSERT_TRUE(comm_->AllToAll(in, send, *out, recv).ok());
  std::vector<float> want;
  for (int p = 0; p < n_; ++p) {
    for (int k = 0; k < recv[p]; ++k) want.insert(want.end(), {static_cast<float>(p), float(rank_), float(k)});
  }
  EXPECT_EQ(Values(*out), want);
}

TEST_F(MpiCommunicatorTest, BroadcastFromEveryRoot) {
  for (int root = 0; root < n_; ++root) {
    Tensor x = F32({static_cast<float>(rank_), static_cast<float>(rank_ * 2)}, {2});
    ASSERT_TRUE(comm_->Broadcast(x, root).ok());
    EXPECT_EQ(Values(x), (std::vector<float>{float(root), float(root * 2)}));
    std::vector<uint8_t> bytes(5, static_cast<uint8_t>(rank_));
    ASSERT_TRUE(comm_->BroadcastHost(absl::MakeSpan(bytes), root).ok());
    EXPECT_EQ(bytes, std::vector<uint8_t>(5, static_cast<uint8_t>(root)));
  }
  EXPECT_THAT(std::string(comm_->Broadcast(F32({1}, {1}), n_).message()), HasSubstr("root"));
}

TEST_F(MpiCommunicatorTest, AllGatherHostAndBarrier) {
  const std::vector<uint8_t> in = {static_cast<uint8_t>(rank_), 7};
  std::vector<uint8_t> out(2 * n_);
  ASSERT_TRUE(comm_->AllGatherHost(in, absl::MakeSpan(out)).ok());
  for (int r = 0; r < n_; ++r) {
    EXPECT_EQ(out[2 * r], r);
    EXPECT_EQ(out[2 * r + 1], 7);
  }
  EXPECT_TRUE(comm_->Barrier().ok());
}

// Checked on every rank before anything is sent, so a bad call cannot leave a peer waiting.
TEST_F(MpiCommunicatorTest, ShapeErrorsNameTheCollectiveAndOperand) {
  Tensor in = F32({1, 2, 3, 4}, {2, 2});
  auto wrong = cpu_.Allocate(DType::kF32, {2 * n_ + 1, 2});
  EXPECT_THAT(std::string(comm_->AllGather(in, *wrong).message()), HasSubstr("all_gather: out"));
  EXPECT_THAT(std::string(comm_->ReduceScatter(*wrong, in).message()), HasSubstr("reduce_scatter"));
  std::vector<int64_t> counts(n_, 0);
  counts[0] = 1;
  EXPECT_THAT(std::string(comm_->AllToAll(in, counts, in, counts).message()), HasSubstr("sum to"));
  EXPECT_THAT(std::string(comm_->AllToAll(in, {1}, in, {1, 1, 1, 1, 1}).message()), HasSubstr("counts"));
  EXPECT_TRUE(comm_->Barrier().ok());  // still in step
}

TEST_F(MpiCommunicatorTest, TimedCommunicatorCountsCallsAndBytes) {
  TimedCommunicator timed(comm_.get());
  Tensor x = F32({1, 2, 3}, {3});
  ASSERT_TRUE(timed.AllReduce(x).ok());
  ASSERT_TRUE(timed.AllReduce(x).ok());
  ASSERT_TRUE(timed.Barrier().ok());
  EXPECT_EQ(Values(x)[2], 3.0f * n_ * n_);
  const auto& s = timed.stats();
  EXPECT_EQ(s[TimedCommunicator::kAllReduce].calls, 2);
  EXPECT_EQ(s[TimedCommunicator::kAllReduce].bytes, 2 * 3 * 4);
  EXPECT_EQ(s[TimedCommunicator::kHost].calls, 1);
  EXPECT_EQ(s[TimedCommunicator::kAllGather].calls, 0);
  EXPECT_GE(timed.total_time(), s[TimedCommunicator::kAllReduce].time);
  EXPECT_STREQ(TimedCommunicator::OpName(TimedCommunicator::kAllReduce), "all_reduce");
  timed.Reset();
  EXPECT_EQ(timed.stats()[TimedCommunicator::kAllReduce].calls, 0);
}

// A backend with device memory: MPI refuses its tensors (GPU ranks use NCCL).
class DeviceMemoryBackend : public CpuBackend {
 public:
  DeviceMemoryBackend() : CpuBackend(1) {}
  absl::StatusOr<DeviceMemoryStats> MemoryStats() override { return DeviceMemoryStats{}; }
};

TEST(MpiCommunicatorOptionsTest, RefusesDeviceMemoryAndBadTimeouts) {
  DeviceMemoryBackend device;
  EXPECT_THAT(std::string(CreateMpiCommunicator(*g_runtime, {.backend = &device}).status().message()),
              HasSubstr("NCCL"));
  EXPECT_FALSE(CreateMpiCommunicator(*g_runtime, {.timeout = absl::ZeroDuration()}).ok());
}

TEST(MpiCommunicatorHostOnlyTest, TensorCollectivesNeedABackend) {
  auto comm = CreateMpiCommunicator(*g_runtime, {});
  ASSERT_TRUE(comm.ok());
  CpuBackend cpu(1);
  auto x = cpu.Allocate(DType::kF32, {1});
  EXPECT_TRUE(absl::IsFailedPrecondition((*comm)->AllReduce(*x)));
  std::vector<uint8_t> b(1);
  EXPECT_TRUE((*comm)->BroadcastHost(absl::MakeSpan(b), 0).ok());
}

TEST(SingleCommunicatorTest, CollectivesOfOneRank) {
  CpuBackend cpu(1);
  SingleCommunicator comm(&cpu);
  EXPECT_EQ(comm.world_size(), 1);
  auto in = cpu.Allocate(DType::kF32, {2, 2});
  auto out = cpu.Allocate(DType::kF32, {2, 2});
  for (int i = 0; i < 4; ++i) in->data_as<float>()[i] = static_cast<float>(i + 1);
  ASSERT_TRUE(comm.AllReduce(*in).ok());
  ASSERT_TRUE(comm.AllGather(*in, *out).ok());
  EXPECT_EQ(std::vector<float>(out->data_as<float>(), out->data_as<float>() + 4), (std::vector<float>{1, 2, 3, 4}));
  std::vector<int64_t> rows = {2};
  ASSERT_TRUE(comm.AllToAll(*in, rows, *out, rows).ok());
  EXPECT_FALSE(comm.Broadcast(*in, 1).ok());
  const std::vector<uint8_t> host_in = {9};
  std::vector<uint8_t> host_out(1);
  ASSERT_TRUE(comm.AllGatherHost(host_in, absl::MakeSpan(host_out)).ok());
  EXPECT_EQ(host_out[0], 9);
}

TEST(DistContextTest, OneRankNeedsNoLauncher) {
  auto ctx = DistContext::Create({.tensor_parallel_size = 1});
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  EXPECT_EQ((*ctx)->world_size(), 1);
  EXPECT_EQ((*ctx)->host()->name(), "single");
  CpuBackend cpu(1);
  auto comm = (*ctx)->CreateCommunicator(&cpu);
  ASSERT_TRUE(comm.ok());
  EXPECT_EQ((*comm)->name(), "single");
  EXPECT_FALSE(DistContext::Create({.tensor_parallel_size = 0}).ok());
  EXPECT_FALSE(DistContext::Create({.collective_timeout = absl::ZeroDuration()}).ok());
}

}  // namespace
}  // namespace moeserve

int main(int argc, char** argv) { return moeserve::RunTestsOnMpiRanks(argc, argv, &moeserve::g_runtime); }
