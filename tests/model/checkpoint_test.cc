#include "server/model/checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/numeric.h"
#include "tests/model/malformed_safetensors.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

HostTensor F32Tensor(std::string name, std::vector<int64_t> shape, const std::vector<float>& v) {
  return {std::move(name), DType::kF32, std::move(shape), Bytes(v)};
}

void WriteText(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Exact equality, where any NaN equals any NaN.
void ExpectSameFloats(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "at " << i;
    } else {
      EXPECT_EQ(Bits(got[i]), Bits(want[i])) << "at " << i << ": " << got[i] << " vs " << want[i];
    }
  }
}

class FixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CheckpointOptions options;
    options.fp8_block_rows = 4;  // the fixture's fp8 weight uses [4, 8] blocks
    options.fp8_block_cols = 8;
    auto ckpt = Checkpoint::Open((::moeserve::testing::FixturesDir() / "safetensors").string(), options);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    ckpt_ = std::move(*ckpt);
  }
  std::vector<float> Load(const std::string& name, std::vector<int64_t> shape) {
    auto v = ckpt_->LoadF32(name, shape);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::vector<float>{};
  }
  std::unique_ptr<Checkpoint> ckpt_;
};

TEST_F(FixtureTest, Bf16AndF16DecodeLikeTorch) {
  ExpectSameFloats(Load("bf16", {2, 64}), Load("bf16_f32", {2, 64}));
  ExpectSameFloats(Load("f16", {2, 64}), Load("f16_f32", {2, 64}));
}

TEST_F(FixtureTest, Bf16AndF16EncodeLikeTorch) {
  const std::vector<float> src = Load("src", {2, 64});
  const absl::Span<const uint8_t> bf16 = *ckpt_->RawData("bf16");
  const absl::Span<const uint8_t> f16 = *ckpt_->RawData("f16");
  for (size_t i = 0; i < src.size(); ++i) {
    const uint16_t want_bf16 = static_cast<uint16_t>(bf16[2 * i] | (bf16[2 * i + 1] << 8));
    const uint16_t want_f16 = static_cast<uint16_t>(f16[2 * i] | (f16[2 * i + 1] << 8));
    if (std::isnan(src[i])) continue;  // NaN payloads may differ
    EXPECT_EQ(FloatToBf16(src[i]), want_bf16) << src[i];
    EXPECT_EQ(FloatToFp16(src[i]), want_f16) << src[i];
  }
}

TEST_F(FixtureTest, Fp8E4M3MatchesTorch) {
  const std::vector<float> src = Load("fp8_src", {2, 64});
  const std::vector<float> want = Load("fp8_f32", {2, 64});
  const absl::Span<const uint8_t> fp8 = *ckpt_->RawData("fp8");
  for (size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(Bits(Fp8E4M3ToFloat(fp8[i])), Bits(want[i])) << "byte " << int{fp8[i]};
    EXPECT_EQ(FloatToFp8E4M3(src[i]), fp8[i]) << src[i];
  }
}

TEST_F(FixtureTest, Fp8BlockDequantWithPartialBlocksMatchesTorch) {
  ExpectSameFloats(Load("w.weight", {10, 13}), Load("w.expected", {10, 13}));
}

// A rank's shard: every slice along either dimension equals that part of the whole tensor, for
// bf16, f16 and fp8 block-scaled storage (fp8 slices across block edges keep each element's
// block scale).
TEST_F(FixtureTest, SlicesAreThePartsOfTheWholeTensor) {
  for (const auto& [name, rows, cols] :
       {std::tuple<std::string, int64_t, int64_t>{"bf16", 2, 64}, {"f16", 2, 64}, {"w.weight", 10, 13}}) {
    const std::vector<float> whole = Load(name, {rows, cols});
    for (auto [dim, begin, count] : {std::tuple<int, int64_t, int64_t>{0, 1, 1}, {1, 8, 16}, {1, 3, 7}, {0, 0, 0}}) {
      if (name == "w.weight" && dim == 0 && count > 0) begin = 3, count = 6;  // rows 3..8: fp8 blocks 0..2
      count = std::min(count, (dim == 0 ? rows : cols) - begin);
      auto got = ckpt_->LoadF32Slice(name, {rows, cols}, dim, begin, count);
      ASSERT_TRUE(got.ok()) << got.status();
      std::vector<float> want;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          if ((dim == 0 && r >= begin && r < begin + count) || (dim == 1 && c >= begin && c < begin + count)) {
            want.push_back(whole[r * cols + c]);
          }
        }
      }
      ExpectSameFloats(*got, want);
    }
  }
  EXPECT_THAT(std::string(ckpt_->LoadF32Slice("bf16", {2, 64}, 1, 60, 8).status().message()),
              HasSubstr("slice [60, 68) of dimension 1 is outside [2, 64]"));
  EXPECT_FALSE(ckpt_->LoadF32Slice("bf16", {2, 64}, 2, 0, 1).ok());
}

TEST_F(FixtureTest, Fp8WithoutScaleIsAnError) {
  auto v = ckpt_->LoadF32("fp8", {2, 64});
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("no scale tensor \"fp8_scale_inv\""));
}

TEST_F(FixtureTest, Fp8ScaleShapeMustMatchBlocks) {
  auto ckpt = Checkpoint::Open((::moeserve::testing::FixturesDir() / "safetensors").string());
  ASSERT_TRUE(ckpt.ok());
  auto v = (*ckpt)->LoadF32("w.weight", {10, 13});  // default [128, 128] blocks want a [1, 1] scale
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("has shape [3, 2], expected [1, 1] for blocks of [128, 128]"));
}

TEST_F(FixtureTest, MissingTensorAndShapeMismatch) {
  EXPECT_TRUE(ckpt_->Has("src"));
  EXPECT_FALSE(ckpt_->Has("model.embed_tokens.weight"));
  auto v = ckpt_->LoadF32("model.embed_tokens.weight", {2});
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr("\"model.embed_tokens.weight\" not found in checkpoint"));
  EXPECT_THAT(v.status().message(), HasSubstr("safetensors"));
  EXPECT_EQ(ckpt_->Info("nope").status().code(), absl::StatusCode::kNotFound);

  v = ckpt_->LoadF32("src", {64, 2});
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("shape [2, 64] does not match the expected [64, 2]"));
}

// A DeepSeek-V3-sized block layout: 128x128 blocks over a 200x300 weight (partial last blocks).
TEST(CheckpointTest, Fp8Block128PartialBlocks) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_fp8");
  const int64_t rows = 200, cols = 300;
  std::vector<uint8_t> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i) {
    uint8_t b = static_cast<uint8_t>(i * 37 + 11);
    if ((b & 0x7f) == 0x7f) b = 0x01;  // skip NaN encodings
    w[i] = b;
  }
  const std::vector<float> scale = {0.5f, 2.0f, 0.25f, 8.0f, 1.5f, 0.125f};  // [2, 3]
  ASSERT_TRUE(WriteSafetensors((dir / "model.safetensors").string(), {{"m.weight", DType::kF8E4M3, {rows, cols}, w},
                                                                      F32Tensor("m.weight_scale_inv", {2, 3}, scale)})
                  .ok());
  auto ckpt = Checkpoint::Open(dir.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto got = (*ckpt)->LoadF32("m.weight", {rows, cols});
  ASSERT_TRUE(got.ok()) << got.status();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float want = Fp8E4M3ToFloat(w[r * cols + c]) * scale[(r / 128) * 3 + c / 128];
      ASSERT_EQ((*got)[r * cols + c], want) << r << "," << c;
    }
  }
}

TEST(CheckpointTest, ShardedIndex) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_sharded");
  ASSERT_TRUE(WriteSafetensors((dir / "model-00001-of-00002.safetensors").string(),
                               {F32Tensor("a", {2}, {1, 2}), F32Tensor("unlisted", {1}, {9})})
                  .ok());
  ASSERT_TRUE(WriteSafetensors((dir / "model-00002-of-00002.safetensors").string(),
                               {{"b", DType::kBF16, {1, 2}, {0x80, 0x3f, 0x00, 0xc0}}})
                  .ok());
  WriteText(dir / "model.safetensors.index.json",
            R"({"metadata": {"total_size": 12}, "weight_map": {)"
            R"("a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})");
  auto ckpt = Checkpoint::Open(dir.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->TensorNames(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*(*ckpt)->LoadF32("a", {2}), (std::vector<float>{1, 2}));
  EXPECT_EQ(*(*ckpt)->LoadF32("b", {1, 2}), (std::vector<float>{1, -2}));
  EXPECT_FALSE((*ckpt)->Has("unlisted"));  // the index is authoritative
}

TEST(CheckpointTest, IndexNamingMissingShard) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_missing_shard");
  ASSERT_TRUE(WriteSafetensors((dir / "s1.safetensors").string(), {F32Tensor("a", {1}, {1})}).ok());
  WriteText(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  auto ckpt = Checkpoint::Open(dir.string());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ckpt.status().message(),
              HasSubstr("names shard \"s2.safetensors\" (holding tensor \"b\"), which is missing"));
}

TEST(CheckpointTest, IndexProblems) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_bad_index");
  ASSERT_TRUE(WriteSafetensors((dir / "s1.safetensors").string(), {F32Tensor("a", {1}, {1})}).ok());
  const auto open_with = [&](const std::string& index) {
    WriteText(dir / "model.safetensors.index.json", index);
    return Checkpoint::Open(dir.string()).status();
  };
  EXPECT_THAT(open_with(R"({"weight_map": {"zz": "s1.safetensors"}})").message(), HasSubstr("maps tensor \"zz\" to"));
  EXPECT_THAT(open_with(R"({"metadata": {}})").message(), HasSubstr("no \"weight_map\" object"));
  EXPECT_THAT(open_with("{not json").message(), HasSubstr("not a JSON object"));
  EXPECT_THAT(open_with(R"({"weight_map": {"a": 3}})").message(), HasSubstr("is not a file name"));
  EXPECT_THAT(open_with(R"({"weight_map": {"a": "../s1.safetensors"}})").message(), HasSubstr("is not a path inside"));
  EXPECT_THAT(open_with(R"({"weight_map": {"a": "/etc/passwd"}})").message(), HasSubstr("is not a path inside"));
}

TEST(CheckpointTest, GlobsSafetensorsFilesWithoutIndex) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_glob");
  ASSERT_TRUE(WriteSafetensors((dir / "part-a.safetensors").string(), {F32Tensor("x", {1}, {3})}).ok());
  ASSERT_TRUE(WriteSafetensors((dir / "part-b.safetensors").string(), {F32Tensor("y", {1}, {4})}).ok());
  WriteText(dir / "config.json", "{}");
  auto ckpt = Checkpoint::Open(dir.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->TensorNames(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(*(*ckpt)->LoadF32("y", {1}), std::vector<float>{4});

  ASSERT_TRUE(WriteSafetensors((dir / "part-c.safetensors").string(), {F32Tensor("x", {1}, {5})}).ok());
  auto dup = Checkpoint::Open(dir.string());
  ASSERT_FALSE(dup.ok());
  EXPECT_THAT(dup.status().message(), HasSubstr("tensor \"x\" appears in both"));
}

TEST(CheckpointTest, ModelSafetensorsWinsOverOtherFiles) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_single");
  ASSERT_TRUE(WriteSafetensors((dir / "model.safetensors").string(), {F32Tensor("x", {1}, {3})}).ok());
  WriteText(dir / "junk.safetensors", "not safetensors");
  auto ckpt = Checkpoint::Open(dir.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->TensorNames(), std::vector<std::string>{"x"});
}

TEST(CheckpointTest, EmptyOrMissingDirectory) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_empty");
  auto ckpt = Checkpoint::Open(dir.string());
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ckpt.status().message(), HasSubstr("no model.safetensors.index.json"));
  EXPECT_EQ(Checkpoint::Open((dir / "nope").string()).status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, TruncatedFile) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_truncated");
  const std::string path = (dir / "model.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path, {F32Tensor("x", {4}, {1, 2, 3, 4})}).ok());
  fs::resize_file(path, fs::file_size(path) - 3);
  auto ckpt = Checkpoint::Open(dir.string());
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(), HasSubstr(path + ": tensor \"x\": data_offsets [0, 16] extend past"));
  EXPECT_THAT(ckpt.status().message(), HasSubstr("truncated"));
}

TEST(CheckpointTest, UnsupportedDTypeLoadsRawButNotAsF32) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_f64");
  WriteText(dir / "model.safetensors", ::moeserve::testing::RawSafetensors(
                                           R"({"d": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}})", 16));
  auto ckpt = Checkpoint::Open(dir.string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->RawData("d")->size(), 16u);
  auto v = (*ckpt)->LoadF32("d", {2});
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("tensor \"d\""));
  EXPECT_THAT(v.status().message(), HasSubstr("unsupported dtype F64"));
}

TEST(CheckpointTest, RejectsNonPositiveBlockSize) {
  const auto dir = ::moeserve::testing::MakeTempDir("ckpt_block");
  CheckpointOptions options;
  options.fp8_block_cols = 0;
  EXPECT_FALSE(Checkpoint::Open(dir.string(), options).ok());
}

}  // namespace
}  // namespace moeserve
