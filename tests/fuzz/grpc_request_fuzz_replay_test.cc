// Runs the body of the gRPC request fuzz target without libFuzzer over its seed corpus
// (tests/fuzz/corpus/grpc_request/: text-format GenerateRequests covering every field, accepted
// and refused, plus wire-format copies), each seed in wire format too, and prefixes and one-byte
// mutations of both forms, so that CI checks the target's promises on any compiler. A broken
// promise aborts the test with the target's message.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "moeserve/v1/inference.pb.h"
#include "server/api/request_convert.h"
#include "server/serving/errors.h"
#include "tests/fuzz/grpc_request_fuzz.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

namespace fs = std::filesystem;

struct Seed {
  std::string name;
  std::string bytes;
};

std::vector<Seed> Seeds() {
  std::vector<Seed> seeds;
  for (const fs::directory_entry& e :
       fs::directory_iterator(fs::path(MOESERVE_SOURCE_DIR) / "tests/fuzz/corpus/grpc_request")) {
    std::ifstream in(e.path(), std::ios::binary);
    seeds.push_back({e.path().filename().string(),
                     std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())});
  }
  std::sort(seeds.begin(), seeds.end(), [](const Seed& a, const Seed& b) { return a.name < b.name; });
  return seeds;
}

class GrpcRequestFuzzReplay : public ::testing::Test {
 protected:
  void SetUp() override {
    MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3/tokenizer.json");
    setenv("MOESERVE_FUZZ_TOKENIZER", (testing::TestDataDir() / "tokenizers/qwen3").c_str(), 1);
  }
};

// Seeds named err_* are refused, in both formats, the others accepted: the corpus reaches both
// ends of every path it means to.
TEST_F(GrpcRequestFuzzReplay, SeedsAreRefusedOrAcceptedAsNamed) {
  int text_seeds = 0, refused_by_conversion = 0;
  for (const Seed& seed : Seeds()) {
    SCOPED_TRACE(seed.name);
    const fuzz::RequestOutcome expected =
        absl::StartsWith(seed.name, "err_") ? fuzz::RequestOutcome::kRefused : fuzz::RequestOutcome::kAccepted;
    EXPECT_EQ(fuzz::FuzzGrpcRequest(seed.bytes), expected);
    if (!absl::EndsWith(seed.name, ".textproto")) continue;
    ++text_seeds;
    v1::GenerateRequest request;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(seed.bytes, &request));
    EXPECT_EQ(fuzz::FuzzGrpcRequest(request.SerializeAsString()), expected);
    const absl::StatusOr<serving::ServingRequest> converted = api::FromProto(request);
    if (!converted.ok()) {
      ++refused_by_conversion;
      EXPECT_TRUE(serving::ErrorField(converted.status()).has_value()) << converted.status();
    }
  }
  EXPECT_GE(text_seeds, 25);
  EXPECT_GE(refused_by_conversion, 5);  // no input, empty text / ids / messages, long request_id
}

TEST_F(GrpcRequestFuzzReplay, CorpusInBothFormatsPrefixesAndMutations) {
  const std::vector<Seed> seeds = Seeds();
  ASSERT_GE(seeds.size(), 25u);
  for (const Seed& seed : seeds) {
    SCOPED_TRACE(seed.name);
    std::vector<std::string> forms = {seed.bytes};
    v1::GenerateRequest request;
    if (google::protobuf::TextFormat::ParseFromString(seed.bytes, &request)) {
      forms.push_back(request.SerializeAsString());
    }
    for (const std::string& form : forms) {
      fuzz::FuzzGrpcRequest(form);
      const size_t stride = std::max<size_t>(1, form.size() / 24);
      for (size_t len = 0; len < form.size(); len += stride) fuzz::FuzzGrpcRequest(form.substr(0, len));
      for (size_t i = 0; i < form.size(); i += stride) {
        for (const char c : {'\0', '\x01', '\x7f', '\xff', '9', '-', '"', '{', '}', ':'}) {
          std::string mutated = form;
          mutated[i] = c;
          fuzz::FuzzGrpcRequest(mutated);
        }
      }
    }
  }
}

}  // namespace
}  // namespace moeserve
