#include "server/model/safetensors.h"

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model/malformed_safetensors.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using ::moeserve::testing::AsBytes;
using ::testing::HasSubstr;

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (uint8_t& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

constexpr DType kAllDTypes[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kF8E4M3,
                                DType::kI32, DType::kI64,  DType::kU8};

size_t ElementSize(DType d) { return SafetensorsDTypeSize(ToSafetensorsDType(d)); }

TEST(SafetensorsTest, RoundTripEveryDType) {
  const auto dir = ::moeserve::testing::MakeTempDir("safetensors_roundtrip");
  std::vector<HostTensor> tensors;
  uint32_t seed = 1;
  for (DType d : kAllDTypes) {
    const std::string base(SafetensorsDTypeName(ToSafetensorsDType(d)));
    tensors.push_back({base + ".matrix", d, {3, 5}, RandomBytes(15 * ElementSize(d), seed++)});
    tensors.push_back({base + ".scalar", d, {}, RandomBytes(ElementSize(d), seed++)});
    tensors.push_back({base + ".empty", d, {0, 7}, {}});
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode ✓"}};
  const std::string path = (dir / "rt.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path, tensors, metadata).ok());

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata(), metadata);
  ASSERT_EQ((*file)->tensors().size(), tensors.size());
  for (const HostTensor& t : tensors) {
    SCOPED_TRACE(t.name);
    const TensorInfo* info = (*file)->Find(t.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype(), t.dtype);
    EXPECT_EQ(info->shape, t.shape);
    EXPECT_EQ(info->nbytes, t.data.size());
    const absl::Span<const uint8_t> data = (*file)->Data(*info);
    EXPECT_EQ(std::vector<uint8_t>(data.begin(), data.end()), t.data);
  }
  EXPECT_EQ((*file)->Find("nope"), nullptr);
}

TEST(SafetensorsTest, HeaderIsPaddedToEightBytesAndDataIsContiguous) {
  const auto dir = ::moeserve::testing::MakeTempDir("safetensors_pad");
  for (int name_len = 1; name_len <= 9; ++name_len) {
    const std::string path = (dir / "p.safetensors").string();
    ASSERT_TRUE(WriteSafetensors(path, {{std::string(name_len, 'x'), DType::kU8, {3}, {1, 2, 3}}}).ok());
    const std::string bytes = ReadAll(path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + n + 3);
    EXPECT_EQ(bytes[8], '{');
  }
}

TEST(SafetensorsTest, WriteRejectsBadTensors) {
  const auto dir = ::moeserve::testing::MakeTempDir("safetensors_write_bad");
  const std::string path = (dir / "bad.safetensors").string();
  const HostTensor a{"a", DType::kF32, {2}, std::vector<uint8_t>(8)};
  absl::Status s = WriteSafetensors(path, {a, a});
  EXPECT_THAT(s.message(), HasSubstr("tensor \"a\": duplicate name"));
  s = WriteSafetensors(path, {{"a", DType::kBF16, {2, 3}, std::vector<uint8_t>(10)}});
  EXPECT_THAT(s.message(), HasSubstr("shape [2, 3] of BF16 needs 12 bytes but data has 10"));
  s = WriteSafetensors(path, {{"__metadata__", DType::kU8, {}, {0}}});
  EXPECT_FALSE(s.ok());
  s = WriteSafetensors(path, {{"a", DType::kU8, {-1}, {}}});
  EXPECT_THAT(s.message(), HasSubstr("negative"));
  s = WriteSafetensors(path, {{"bad\xff", DType::kU8, {1}, {0}}});
  EXPECT_THAT(s.message(), HasSubstr("cannot encode header"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(SafetensorsTest, ParsesPythonWrittenFixture) {
  const auto path = ::moeserve::testing::FixturesDir() / "safetensors" / "model.safetensors";
  auto file = SafetensorsFile::Open(path.string());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  const TensorInfo* w = (*file)->Find("w.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->file_dtype, SafetensorsDType::kF8E4M3);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{10, 13}));
  // tensors() is in data order.
  for (size_t i = 1; i < (*file)->tensors().size(); ++i) {
    EXPECT_LE((*file)->tensors()[i - 1].offset, (*file)->tensors()[i].offset);
  }
}

TEST(SafetensorsTest, AcceptsUnsupportedButKnownDTypes) {
  const std::string bytes =
      ::moeserve::testing::RawSafetensors(R"({"d": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]},)"
                                          R"( "b": {"dtype": "BOOL", "shape": [3], "data_offsets": [16, 19]}})",
                                          19);
  auto header = ParseSafetensorsHeader(AsBytes(bytes), "x.safetensors");
  ASSERT_TRUE(header.ok()) << header.status();
  ASSERT_EQ(header->tensors.size(), 2u);
  EXPECT_EQ(header->tensors[0].file_dtype, SafetensorsDType::kF64);
  EXPECT_EQ(header->tensors[0].dtype(), std::nullopt);
  EXPECT_EQ(header->tensors[1].nbytes, 3u);
}

TEST(SafetensorsTest, AllowsGapsAndZeroSizedTensorsAnywhere) {
  const std::string bytes =
      ::moeserve::testing::RawSafetensors(R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},)"
                                          R"( "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [5, 5]}})",
                                          8);
  auto header = ParseSafetensorsHeader(AsBytes(bytes), "x.safetensors");
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->tensors[0].offset, header->data_offset + 4);
}

TEST(SafetensorsTest, OpenMissingFileNamesIt) {
  auto file = SafetensorsFile::Open("/nonexistent/x.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(), HasSubstr("/nonexistent/x.safetensors"));
}

TEST(SafetensorsTest, EveryTruncationIsAnError) {
  const std::string valid = ::moeserve::testing::ValidSafetensors();
  ASSERT_TRUE(ParseSafetensorsHeader(AsBytes(valid), "v.safetensors").ok());
  for (size_t len = 0; len < valid.size(); ++len) {
    const std::string prefix = valid.substr(0, len);
    const auto header = ParseSafetensorsHeader(AsBytes(prefix), "v.safetensors");
    EXPECT_FALSE(header.ok()) << "truncated to " << len << " bytes";
    EXPECT_THAT(header.status().message(), HasSubstr("v.safetensors: "));
  }
}

class MalformedTest : public ::testing::TestWithParam<::moeserve::testing::MalformedCase> {};

TEST_P(MalformedTest, IsRejectedWithReason) {
  const auto& c = GetParam();
  const auto header = ParseSafetensorsHeader(AsBytes(c.bytes), "model.safetensors");
  ASSERT_FALSE(header.ok());
  EXPECT_THAT(header.status().message(), HasSubstr("model.safetensors: "));
  EXPECT_THAT(header.status().message(), HasSubstr(c.expected));
}

INSTANTIATE_TEST_SUITE_P(Table, MalformedTest, ::testing::ValuesIn(::moeserve::testing::MalformedSafetensorsCases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace moeserve
