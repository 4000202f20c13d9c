// A model that cannot produce numbers: logits that are NaN are the engine's fault, so a request
// fails with INTERNAL (it was INVALID_ARGUMENT, blaming the client), and after a few such
// requests in a row the gRPC health service and /health report NOT_SERVING (they said SERVING).

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/api/api_test_util.h"
#include "tests/test_util.h"

namespace moeserve::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A copy of the llama fixture whose final norm weight is NaN: every logit is NaN.
std::string NanModelDir() {
  const std::filesystem::path dir = MakeTempDir("nan_model");
  for (const auto& entry : std::filesystem::directory_iterator(LlamaFixtureDir())) {
    std::filesystem::copy(entry.path(), dir / entry.path().filename());
  }
  std::fstream f(dir / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_size = 0;
  f.read(reinterpret_cast<char*>(&header_size), sizeof(header_size));
  std::string header(header_size, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_size));
  const nlohmann::json tensor = nlohmann::json::parse(header).at("model.norm.weight");
  EXPECT_EQ(tensor.at("dtype"), "F32");
  const uint64_t begin = tensor.at("data_offsets")[0], end = tensor.at("data_offsets")[1];
  f.seekp(static_cast<std::streamoff>(8 + header_size + begin));
  const std::string nan_bytes(end - begin, '\xff');  // 0xffffffff: a NaN
  f.write(nan_bytes.data(), static_cast<std::streamsize>(nan_bytes.size()));
  return dir.string();
}

std::string GrpcHealth(TestServer& server, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(server.Channel());
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return "error: " + status.error_message();
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

TEST(ModelHealthTest, NanLogitsAreInternalAndMakeTheServerUnhealthy) {
  TestServerOptions options;
  options.model_dir = NanModelDir();
  auto server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GE((*server)->http_port(), 0);
  EXPECT_EQ(GrpcHealth(**server, ""), "SERVING");
  EXPECT_THAT(HttpGet((*server)->http_port(), "/health"), StartsWith("200"));

  auto stub = (*server)->Stub();
  for (int i = 0; i < Engine::kUnhealthyAfterModelFaults; ++i) {
    const StreamResult r = RunGenerate(stub.get(), IdsRequest({1, 2, 3}, 4));
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INTERNAL) << r.status.error_message();
    EXPECT_THAT(r.status.error_message(), HasSubstr("logits that contain NaN"));
  }
  EXPECT_EQ(GrpcHealth(**server, ""), "NOT_SERVING");
  EXPECT_EQ(GrpcHealth(**server, "moeserve.v1.Inference"), "NOT_SERVING");
  EXPECT_THAT(HttpGet((*server)->http_port(), "/health"), StartsWith("503"));
  EXPECT_EQ(WaitForIdle((*server)->engine(), Engine::kUnhealthyAfterModelFaults).model_faults,
            Engine::kUnhealthyAfterModelFaults);
  EXPECT_THAT(HttpGet((*server)->http_port(), "/metrics"),
              HasSubstr(absl::StrCat("moeserve_model_faults_total ", Engine::kUnhealthyAfterModelFaults, "\n")));
}

}  // namespace
}  // namespace moeserve::testing
