// Tensor and expert parallelism on real MPI ranks (CTest runs this under `mpirun -np 2` and
// `-np 4`): on every architecture fixture, the sharded model gives the logits of the whole model
// (fp32 tolerance) and the same greedy ids, prefill and decode, with and without
// --expert-parallel; shapes the ranks cannot split are refused at load with a message naming
// what does not divide.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/dist/mpi_communicator.h"
#include "server/model/model.h"
#include "server/model/parallel.h"
#include "server/model/random_model.h"
#include "tests/dist/mpi_test_main.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using ::testing::HasSubstr;

const MpiRuntime* g_runtime = nullptr;  // made in main, before the tests

constexpr int32_t kBlockSize = 4;
constexpr int32_t kBlocks = 24;
constexpr int kDecodeSteps = 6;

std::vector<float> Logits(Model& model, Backend& backend, const ForwardBatch& batch) {
  auto logits = model.Forward(batch);
  EXPECT_TRUE(logits.ok()) << logits.status();
  if (!logits.ok()) return {};
  std::vector<float> host(static_cast<size_t>(logits->numel()));
  EXPECT_TRUE(backend.CopyToHostF32(*logits, absl::MakeSpan(host)).ok());
  return host;
}

// max |a - b| / max |b|: fp32 sums in another order differ by a few ulps of the largest logit.
double RelErr(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return diff / scale;
}

std::vector<int32_t> Argmax(const std::vector<float>& logits, int64_t vocab) {
  std::vector<int32_t> ids;
  for (size_t row = 0; row * vocab < logits.size(); ++row) {
    const auto first = logits.begin() + row * vocab;
    ids.push_back(static_cast<int32_t>(std::max_element(first, first + vocab) - first));
  }
  return ids;
}

class TensorParallelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto comm = CreateMpiCommunicator(*g_runtime, {.backend = &sharded_backend_, .timeout = absl::Seconds(60)});
    ASSERT_TRUE(comm.ok()) << comm.status();
    comm_ = std::move(*comm);
  }

  // Runs one prompt batch and kDecodeSteps greedy steps of two sequences through the whole model
  // and the sharded one; returns the worst relative logits error.
  void ExpectSameAsOneRank(const std::string& dir, bool expert_parallel, EpDispatch dispatch = EpDispatch::kAllReduce) {
    const std::string mode =
        expert_parallel ? absl::StrCat(" (expert parallel, ", EpDispatchName(dispatch), ")") : std::string();
    SCOPED_TRACE(dir + mode);
    auto whole = LoadModel(dir, &whole_backend_, {.max_model_len = 64});
    ASSERT_TRUE(whole.ok()) << whole.status();
    auto sharded = LoadModel(dir, &sharded_backend_,
                             {.max_model_len = 64, .parallel = ModelParallel(comm_.get(), expert_parallel, dispatch)});
    ASSERT_TRUE(sharded.ok()) << sharded.status();
    Model& a = **whole;
    Model& b = **sharded;
    ASSERT_TRUE(a.AllocateKvCache(KvLayoutFor(a, kBlocks, kBlockSize)).ok());
    ASSERT_TRUE(b.AllocateKvCache(KvLayoutFor(b, kBlocks, kBlockSize)).ok());
    // Every rank holds a share: the weights and (GQA) the cache are smaller than the whole's.
    EXPECT_LT(b.weight_bytes(), a.weight_bytes());
    const int64_t vocab = a.config().vocab_size;
    const std::vector<int32_t> table_a = {1, 2, 3, 4, 5}, table_b = {6, 7, 8, 9, 10};
    std::vector<int32_t> prompt_a = {1, 5, 9, 13, 17, 21, 25, 29, 33}, prompt_b = {3, 4, 5};
    for (int32_t& t : prompt_a) t %= static_cast<int32_t>(vocab);
    ForwardBatch prefill{.block_size = kBlockSize};
    prefill.AddSequence(prompt_a, 0, table_a, true);
    prefill.AddSequence(prompt_b, 0, table_b, true);
    std::vector<float> la = Logits(a, whole_backend_, prefill), lb = Logits(b, sharded_backend_, prefill);
    ASSERT_EQ(la.size(), lb.size());
    double worst = RelErr(lb, la);
    std::vector<int32_t> ids = Argmax(la, vocab);
    EXPECT_EQ(Argmax(lb, vocab), ids) << "prefill";
    int32_t len_a = static_cast<int32_t>(prompt_a.size()), len_b = static_cast<int32_t>(prompt_b.size());
    for (int step = 0; step < kDecodeSteps; ++step) {
      ForwardBatch decode{.block_size = kBlockSize};
      decode.AddSequence({ids[0]}, len_a++, table_a, true);
      decode.AddSequence({ids[1]}, len_b++, table_b, true);
      la = Logits(a, whole_backend_, decode);
      lb = Logits(b, sharded_backend_, decode);
      ASSERT_EQ(la.size(), lb.size());
      worst = std::max(worst, RelErr(lb, la));
      ids = Argmax(la, vocab);
      EXPECT_EQ(Argmax(lb, vocab), ids) << "decode step " << step;
    }
    EXPECT_LE(worst, 2e-5);
    if (comm_->rank() == 0) {
      std::printf("%s%s on %d ranks: max logits error %.2e, weights %lld of %lld bytes per rank\n", dir.c_str(),
                  mode.c_str(), comm_->world_size(), worst, static_cast<long long>(b.weight_bytes()),
                  static_cast<long long>(a.weight_bytes()));
    }
  }

  // The exact path (fp32 activations in every product): both sides differ only in summation order.
  static constexpr CpuBackendOptions kExact{.num_threads = 1, .exact_gemm = true};
  CpuBackend whole_backend_{kExact}, sharded_backend_{kExact};
  std::unique_ptr<Communicator> comm_;
};

std::string Fixture(const std::string& name) { return (testing::FixturesDir() / "models" / name).string(); }

TEST_F(TensorParallelTest, DenseFixturesMatchOneRank) {
  for (const char* name : {"llama", "llama3_tied", "llama_linear", "qwen2", "qwen2_bf16_sharded"}) {
    ExpectSameAsOneRank(Fixture(name), false);
  }
}

// Expert parallelism both ways: the FFN's partial sums all-reduced, and tokens dispatched to their
// experts' ranks by all-to-all (two decode tokens on 4 ranks: two ranks own only padding).
TEST_F(TensorParallelTest, MoeFixturesMatchOneRankWithAndWithoutExpertParallelism) {
  for (const std::string& dir : {Fixture("mixtral"), Fixture("deepseek_v2"), Fixture("deepseek_v2_lite"),
                                 Fixture("deepseek_v3"), std::string(MOESERVE_SOURCE_DIR "/models/default")}) {
    ExpectSameAsOneRank(dir, false);
    ExpectSameAsOneRank(dir, true, EpDispatch::kAllReduce);
    ExpectSameAsOneRank(dir, true, EpDispatch::kAllToAll);
  }
}

// Fixtures added with later architectures (Qwen3, Qwen3-MoE) are taken when present.
TEST_F(TensorParallelTest, OtherArchitectureFixturesMatchOneRank) {
  for (const char* name : {"qwen3", "qwen3_moe"}) {
    if (!std::filesystem::exists(Fixture(name))) continue;
    ExpectSameAsOneRank(Fixture(name), false);
    if (std::string(name).find("moe") != std::string::npos) {
      ExpectSameAsOneRank(Fixture(name), true, EpDispatch::kAllReduce);
      ExpectSameAsOneRank(Fixture(name), true, EpDispatch::kAllToAll);
    }
  }
}

// DeepSeek-V3's fp8 weights split only on whole 128x128 blocks; the fixture's 136-wide experts
// cannot be.
TEST_F(TensorParallelTest, Fp8WeightsSplitOnlyOnWholeBlocks) {
  auto sharded = LoadModel(Fixture("deepseek_v3_fp8"), &sharded_backend_,
                           {.max_model_len = 64, .parallel = ModelParallel(comm_.get(), false)});
  ASSERT_FALSE(sharded.ok());
  EXPECT_THAT(std::string(sharded.status().message()), HasSubstr("does not fall on 128-blocks"));
}

// A head count the ranks do not divide is refused at load, naming the field and both numbers.
TEST_F(TensorParallelTest, IndivisibleHeadsAreRefused) {
  const std::filesystem::path dir = testing::MakeTempDir("tp_heads");
  std::ifstream in(Fixture("llama") + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["num_attention_heads"] = 3;  // divisible by neither 2 nor 4
  config["num_key_value_heads"] = 3;
  config["hidden_size"] = 48;
  config.erase("head_dim");
  ASSERT_TRUE(WriteRandomModel(config.dump(), dir.string(), {.seed = 1, .dtype = DType::kF32}).ok());
  auto sharded =
      LoadModel(dir.string(), &sharded_backend_, {.max_model_len = 64, .parallel = ModelParallel(comm_.get(), false)});
  ASSERT_FALSE(sharded.ok());
  EXPECT_THAT(std::string(sharded.status().message()),
              HasSubstr("num_attention_heads (3) is not divisible by the tensor-parallel size"));
}

}  // namespace
}  // namespace moeserve

int main(int argc, char** argv) { return moeserve::RunTestsOnMpiRanks(argc, argv, &moeserve::g_runtime); }
