// moeserve.v1.Inference end to end over a real engine: streaming equals the engine's output,
// every bad input gets its status code and a message naming the field, limits, auth, health,
// reflection, metrics, model info.

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/serving/frontend.h"
#include "server/tokenizer/tokenizer.h"
#include "tests/api/api_test_util.h"
#include "tests/engine/engine_test_util.h"
#include "tests/test_util.h"

namespace moeserve::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = moeserve::v1;

// What `engine` itself generates for `prompt` under `params`, one output per sample: the reference a
// stream is compared with. Empty (and a test failure) when the engine refuses the request.
std::vector<RequestOutput> EngineOutputs(Engine& engine, const std::vector<int32_t>& prompt,
                                         const SamplingParams& params) {
  auto stream = engine.AddRequest({.prompt_token_ids = prompt, .sampling = params});
  EXPECT_TRUE(stream.ok()) << stream.status();
  return stream.ok() ? (*stream)->WaitForCompletions() : std::vector<RequestOutput>();
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestServerOptions options;
    options.model_dir = LlamaFixtureDir();
    options.engine.check_integrity_every_step = true;
    auto server = TestServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = server_->Stub();
  }

  std::unique_ptr<TestServer> server_;
  std::unique_ptr<v1::Inference::Stub> stub_;
};

TEST_F(ServerTest, StreamingGenerateEqualsTheEngineOutput) {
  const std::vector<int32_t> prompt = {1, 17, 33, 5, 90};
  v1::GenerateRequest request = IdsRequest(prompt, 20);
  request.set_request_id("client-7");
  request.set_return_prompt_token_ids(true);
  StreamResult got = RunGenerate(stub_.get(), request);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();

  const std::vector<RequestOutput> want = EngineOutputs(*server_->engine(), prompt, Greedy(20));
  ASSERT_EQ(want.size(), 1u);
  EXPECT_EQ(got.token_ids, want[0].token_ids);
  ASSERT_EQ(got.token_ids.size(), 20u);

  ASSERT_GE(got.responses.size(), 1u);  // deltas merge while the handler is writing
  for (const auto& r : got.responses) EXPECT_EQ(r.request_id(), "client-7");
  EXPECT_THAT(
      std::vector<int32_t>(got.responses[0].prompt_token_ids().begin(), got.responses[0].prompt_token_ids().end()),
      ::testing::ElementsAreArray(prompt));
  for (size_t i = 0; i + 1 < got.responses.size(); ++i) {
    EXPECT_EQ(got.responses[i].finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
    EXPECT_FALSE(got.responses[i].has_usage());
  }
  const v1::GenerateResponse& last = got.responses.back();
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(last.usage().prompt_tokens(), 5);
  EXPECT_EQ(last.usage().completion_tokens(), 20);
  EXPECT_GT(last.timings().e2e_seconds(), 0.0);
  EXPECT_GE(last.timings().e2e_seconds(), last.timings().time_to_first_token_seconds());
}

TEST_F(ServerTest, SeededSamplingAndLogprobsReachTheEngine) {
  v1::GenerateRequest request = IdsRequest({1, 2, 3}, 12);
  request.mutable_sampling()->set_temperature(1.0f);
  request.mutable_sampling()->set_seed(42);
  request.mutable_sampling()->set_logprobs(3);
  StreamResult a = RunGenerate(stub_.get(), request);
  StreamResult b = RunGenerate(stub_.get(), request);
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_EQ(a.token_ids, b.token_ids);
  int logprobs = 0;
  for (const auto& r : a.responses) {
    ASSERT_EQ(r.logprobs_size(), r.token_ids_size());
    for (int i = 0; i < r.logprobs_size(); ++i) {
      EXPECT_EQ(r.logprobs(i).token_id(), r.token_ids(i));
      EXPECT_EQ(r.logprobs(i).top_size(), 3);
      EXPECT_LE(r.logprobs(i).logprob(), 0.0f);
      ++logprobs;
    }
  }
  EXPECT_EQ(logprobs, 12);
}

TEST_F(ServerTest, PromptLogprobsComeOnceOnCompletionZerosFirstResponse) {
  const std::vector<int32_t> prompt = {4, 8, 15, 16, 23, 42, 7};
  v1::GenerateRequest request = IdsRequest(prompt, 5);
  request.mutable_sampling()->set_n(2);
  request.mutable_sampling()->set_prompt_logprobs(2);
  StreamResult got = RunGenerate(stub_.get(), request);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();

  SamplingParams params = Greedy(5);
  params.prompt_logprobs = 2;
  const std::vector<RequestOutput> outputs = EngineOutputs(*server_->engine(), prompt, params);
  ASSERT_EQ(outputs.size(), 1u);
  const RequestOutput& want = outputs[0];
  ASSERT_EQ(want.prompt_logprobs.size(), prompt.size() - 1);

  int carrying = 0;
  bool seen_tokens_of_0 = false;
  for (const v1::GenerateResponse& r : got.responses) {
    if (r.prompt_logprobs_size() > 0) {
      ++carrying;
      EXPECT_EQ(r.index(), 0);
      EXPECT_FALSE(seen_tokens_of_0) << "not on completion 0's first response";
      EXPECT_GT(r.token_ids_size(), 0);
      ASSERT_EQ(r.prompt_logprobs_size(), static_cast<int>(prompt.size()) - 1);
      for (int i = 0; i < r.prompt_logprobs_size(); ++i) {
        const v1::TokenLogprobs& lp = r.prompt_logprobs(i);
        EXPECT_EQ(lp.token_id(), prompt[i + 1]);
        EXPECT_EQ(lp.logprob(), want.prompt_logprobs[i].logprob) << i;
        ASSERT_EQ(lp.top_size(), 2);
        for (int k = 0; k < 2; ++k) {
          EXPECT_EQ(lp.top(k).token_id(), want.prompt_logprobs[i].top[k].token_id);
          EXPECT_EQ(lp.top(k).logprob(), want.prompt_logprobs[i].top[k].logprob);
        }
      }
    }
    if (r.index() == 0 && r.token_ids_size() > 0) seen_tokens_of_0 = true;
  }
  EXPECT_EQ(carrying, 1);
}

TEST_F(ServerTest, ParallelSamplesStreamWithTheirIndices) {
  const std::vector<int32_t> prompt = {4, 8, 15, 16, 23, 42, 7};
  v1::GenerateRequest request = IdsRequest(prompt, 10);
  request.mutable_sampling()->set_n(3);
  request.mutable_sampling()->set_temperature(1.0f);
  request.mutable_sampling()->set_seed(99);
  StreamResult got = RunGenerate(stub_.get(), request);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();

  SamplingParams params = Sampled(10);
  params.n = 3;
  params.seed = 99;
  const std::vector<RequestOutput> want = EngineOutputs(*server_->engine(), prompt, params);
  ASSERT_EQ(want.size(), 3u);

  std::map<int32_t, std::vector<int32_t>> ids;
  std::map<int32_t, int> finishes;
  for (const v1::GenerateResponse& r : got.responses) {
    ASSERT_GE(r.index(), 0);
    ASSERT_LT(r.index(), 3);
    ids[r.index()].insert(ids[r.index()].end(), r.token_ids().begin(), r.token_ids().end());
    if (r.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      EXPECT_EQ(r.finish_reason(), v1::FINISH_REASON_LENGTH);
      ++finishes[r.index()];
    }
  }
  for (int32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ids[i], want[i].token_ids) << "sample " << i;
    EXPECT_EQ(finishes[i], 1) << "sample " << i;
  }
  const v1::GenerateResponse& last = got.responses.back();
  EXPECT_EQ(last.usage().prompt_tokens(), 7);
  EXPECT_EQ(last.usage().completion_tokens(), 3 * 10);
}

TEST_F(ServerTest, StopTokenIdFinishesWithStop) {
  StreamResult free_run = RunGenerate(stub_.get(), IdsRequest({1, 9, 8}, 10));
  ASSERT_TRUE(free_run.status.ok());
  const int32_t stop_id = free_run.token_ids[3];
  v1::GenerateRequest request = IdsRequest({1, 9, 8}, 10);
  request.mutable_sampling()->add_stop_token_ids(stop_id);
  StreamResult got = RunGenerate(stub_.get(), request);
  ASSERT_TRUE(got.status.ok());
  const auto& last = got.responses.back();
  EXPECT_EQ(last.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(last.stop_token_id(), stop_id);
  EXPECT_LE(got.token_ids.size(), 4u);
}

struct BadInput {
  std::string name;
  std::function<void(v1::GenerateRequest*)> edit;
  grpc::StatusCode code;
  std::vector<std::string> message_parts;
};

TEST_F(ServerTest, EveryBadInputNamesTheFieldAndTheLimit) {
  const std::vector<BadInput> cases = {
      {"no input",
       [](v1::GenerateRequest* r) { r->clear_input(); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"input", "exactly one"}},
      {"empty ids",
       [](v1::GenerateRequest* r) { r->mutable_token_ids()->clear_ids(); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"token_ids.ids", "empty"}},
      {"id outside vocab",
       [](v1::GenerateRequest* r) { r->mutable_token_ids()->set_ids(1, 1 << 20); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"token_ids.ids[1]", "vocabulary"}},
      {"negative id",
       [](v1::GenerateRequest* r) { r->mutable_token_ids()->set_ids(0, -1); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"token_ids.ids[0]", "vocabulary"}},
      {"prompt longer than the context",
       [](v1::GenerateRequest* r) {
         for (int i = 0; i < 80; ++i) r->mutable_token_ids()->add_ids(3);
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"token_ids.ids", "max_model_len", "64"}},
      {"max_tokens beyond the context",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_max_tokens(1000); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.max_tokens", "at most 61"}},
      {"max_tokens 0",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_max_tokens(0); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.max_tokens", "at least 1"}},
      {"temperature",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_temperature(-1); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.temperature", "100"}},
      {"top_p",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_top_p(0); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.top_p"}},
      {"min_p",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_min_p(2); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.min_p"}},
      {"n above max_num_samples",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_n(17); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.n", "[1, 16]", "got 17"}},
      {"n 0",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_n(0); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.n", "got 0"}},
      {"logprobs",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_logprobs(21); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.logprobs", "20"}},
      {"prompt_logprobs",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_prompt_logprobs(21); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.prompt_logprobs", "[0, 20]", "got 21"}},
      {"stop token id",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->add_stop_token_ids(1 << 20); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"sampling.stop_token_ids"}},
      {"request_id",
       [](v1::GenerateRequest* r) { r->set_request_id(std::string(300, 'x')); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"request_id", "256"}},
      {"cache_salt",
       [](v1::GenerateRequest* r) { r->set_cache_salt(std::string(300, 'x')); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"cache_salt", "256"}},
      {"empty text",
       [](v1::GenerateRequest* r) { r->set_text(""); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"text", "empty"}},
      {"text without a tokenizer",
       [](v1::GenerateRequest* r) { r->set_text("hello"); },
       grpc::StatusCode::FAILED_PRECONDITION,
       {"text", "tokenizer"}},
      {"stop strings without a tokenizer",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->add_stop("x"); },
       grpc::StatusCode::FAILED_PRECONDITION,
       {"sampling.stop"}},
      {"messages",
       [](v1::GenerateRequest* r) {
         auto* m = r->mutable_messages()->add_messages();
         m->set_role("user");
         m->set_content("hi");
       },
       grpc::StatusCode::FAILED_PRECONDITION,
       {"messages"}},
  };
  for (const BadInput& c : cases) {
    SCOPED_TRACE(c.name);
    v1::GenerateRequest request = IdsRequest({1, 2, 3}, 4);
    c.edit(&request);
    StreamResult got = RunGenerate(stub_.get(), request);
    EXPECT_EQ(got.status.error_code(), c.code) << got.status.error_message();
    for (const std::string& part : c.message_parts) {
      EXPECT_THAT(got.status.error_message(), HasSubstr(part));
    }
    EXPECT_TRUE(got.responses.empty());
  }
  // Nothing of it reached the engine's blocks.
  EXPECT_EQ(server_->engine()->GetMetrics().kv_blocks_used, 0);
}

TEST_F(ServerTest, DetokenizeAndTokenizeWithoutATokenizer) {
  grpc::ClientContext c1;
  v1::TokenizeRequest t;
  t.set_text("hi");
  v1::TokenizeResponse tr;
  EXPECT_EQ(stub_->Tokenize(&c1, t, &tr).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  grpc::ClientContext c2;
  v1::TokenizeResponse tr2;
  EXPECT_EQ(stub_->Tokenize(&c2, v1::TokenizeRequest(), &tr2).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServerTest, ModelInfoDescribesTheModel) {
  grpc::ClientContext context;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.architecture(), "LlamaForCausalLM");
  EXPECT_EQ(info.model_type(), "llama");
  EXPECT_EQ(info.model_id(), "");  // not set in ApiServerOptions here
  EXPECT_EQ(info.max_model_len(), 64);
  EXPECT_EQ(info.vocab_size(), server_->engine()->vocab_size());
  EXPECT_EQ(info.backend(), "cpu");
  EXPECT_GT(info.kv_capacity_tokens(), 0);
  EXPECT_EQ(info.kv_capacity_tokens(), int64_t{info.kv_cache_blocks()} * info.kv_block_size());
  EXPECT_FALSE(info.has_tokenizer());
}

TEST_F(ServerTest, HealthIsServing) {
  auto health = grpc::health::v1::Health::NewStub(server_->Channel());
  for (const char* service : {"", "moeserve.v1.Inference"}) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  EXPECT_EQ(HttpGet(server_->metrics_port(), "/health"), "200\n\nSERVING\n");
  EXPECT_THAT(HttpGet(server_->metrics_port(), "/nope"), ::testing::StartsWith("404"));
}

TEST_F(ServerTest, MetricsEndpointHasEveryNameAndCountsRequests) {
  ASSERT_TRUE(RunGenerate(stub_.get(), IdsRequest({1, 2, 3, 4}, 6)).status.ok());
  WaitForIdle(server_->engine());  // the call ended; the engine's step publishes right after
  const std::string page = HttpGet(server_->metrics_port(), "/metrics");
  ASSERT_THAT(page, ::testing::StartsWith("200"));
  for (const char* name :
       {"moeserve_time_to_first_token_seconds_bucket", "moeserve_inter_token_latency_seconds_count",
        "moeserve_e2e_request_latency_seconds_sum", "moeserve_request_queue_time_seconds_count",
        "moeserve_requests_running ", "moeserve_requests_waiting ", "moeserve_kv_cache_blocks_used 0",
        "moeserve_kv_cache_blocks_cached ", "moeserve_kv_cache_blocks_total ", "moeserve_prompt_tokens_total 4",
        "moeserve_generation_tokens_total 6", "moeserve_prefix_cache_queries_total ",
        "moeserve_prefix_cache_hits_total ", "moeserve_requests_total{finish_reason=\"length\"} 1",
        "# TYPE moeserve_e2e_request_latency_seconds histogram"}) {
    EXPECT_THAT(page, HasSubstr(name));
  }
  EXPECT_THAT(page, HasSubstr("moeserve_e2e_request_latency_seconds_count 1\n"));
  EXPECT_THAT(page, HasSubstr("moeserve_inter_token_latency_seconds_count 5\n"));
  // The cache layout the Gateway API Inference Extension reads, from the running engine.
  const EngineMetrics m = server_->engine()->GetMetrics();
  ASSERT_GT(m.kv_blocks_total, 0);
  EXPECT_THAT(page,
              HasSubstr(absl::StrCat("moeserve_cache_config_info{block_size=\"", server_->engine()->config().block_size,
                                     "\",num_gpu_blocks=\"", m.kv_blocks_total, "\"} 1\n")));
  EXPECT_THAT(page, HasSubstr("moeserve_kv_cache_usage_ratio 0\n"));  // idle: nothing held
}

// The shipped default model is a DeepSeek-V3-style MoE: /metrics carries its expert token counts,
// summed over MoE layers; they add up to tokens run x top_k x MoE layers.
TEST(MoeServerTest, MetricsEndpointHasExpertTokenCounts) {
  TestServerOptions options;
  options.model_dir = MOESERVE_SOURCE_DIR "/models/default";
  options.engine.max_model_len = 64;
  options.engine.check_integrity_every_step = true;
  auto server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = (*server)->Stub();
  ASSERT_TRUE(RunGenerate(stub.get(), IdsRequest({1, 2, 3, 4}, 6)).status.ok());
  // The engine reads the counters when it goes idle, right after the request's last step.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int64_t sum = 0;
  int64_t want = 0;
  std::string page;
  while (absl::Now() < deadline) {
    const EngineMetrics m = (*server)->engine()->GetMetrics();
    const ModelConfig& c = (*server)->engine()->model_config();
    int64_t moe_layers = 0;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) moe_layers += c.IsMoeLayer(i) ? 1 : 0;
    want = m.tokens_computed * c.num_experts_per_tok * moe_layers;
    page = HttpGet((*server)->metrics_port(), "/metrics");
    sum = 0;
    for (absl::string_view line : absl::StrSplit(page, '\n')) {
      if (!absl::StartsWith(line, "moeserve_moe_expert_tokens_total{expert=")) continue;
      int64_t n = 0;
      ASSERT_TRUE(absl::SimpleAtoi(line.substr(line.rfind(' ') + 1), &n)) << line;
      sum += n;
    }
    if (want > 0 && sum == want) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(page, HasSubstr("# TYPE moeserve_moe_expert_tokens_total counter"));
  EXPECT_THAT(page, HasSubstr("moeserve_moe_expert_tokens_total{expert=\"7\"} "));
  EXPECT_THAT(page, HasSubstr("moeserve_moe_layers 4\n"));
  EXPECT_THAT(page, ::testing::Not(HasSubstr("layer=\"")));
  EXPECT_EQ(want, 9 * 2 * 4);  // prompt 4 + 5 decoded tokens, top-2, 4 MoE layers
  EXPECT_EQ(sum, want);
}

// Lists services over grpc.reflection.v1alpha with a hand-encoded request
// (ServerReflectionRequest{list_services: ""}).
grpc::Status ListServices(std::shared_ptr<grpc::Channel> channel, std::string* raw) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  void* tag;
  bool ok;
  auto call = stub.PrepareCall(&context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  const char request[] = {0x3a, 0x00};  // field 7 (list_services), empty string
  grpc::Slice slice(request, sizeof(request));
  grpc::ByteBuffer buffer(&slice, 1);
  call->Write(buffer, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  if (ok) {
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    for (const auto& s : slices) raw->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  return status;
}

TEST_F(ServerTest, ReflectionListsTheService) {
  std::string raw;
  ASSERT_TRUE(ListServices(server_->Channel(), &raw).ok());
  EXPECT_THAT(raw, HasSubstr("moeserve.v1.Inference"));
}

TEST(ServerOptionsTest, ReflectionCanBeTurnedOff) {
  TestServerOptions options;
  options.model_dir = LlamaFixtureDir();
  options.server.enable_reflection = false;
  auto server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  std::string raw;
  EXPECT_EQ(ListServices((*server)->Channel(), &raw).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST(ServerOptionsTest, MessagesAboveTheLimitAreResourceExhausted) {
  TestServerOptions options;
  options.model_dir = LlamaFixtureDir();
  options.server.max_message_bytes = 256;
  auto server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = (*server)->Stub();
  std::vector<int32_t> ids(300, 100000);  // > 256 bytes on the wire
  StreamResult got = RunGenerate(stub.get(), IdsRequest(ids, 1));
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << got.status.error_message();
  EXPECT_TRUE(RunGenerate(stub.get(), IdsRequest({1, 2}, 2)).status.ok());
}

TEST(ServerOptionsTest, FullAdmissionIsResourceExhausted) {
  TestServerOptions options;
  options.model_dir = LlamaFixtureDir();
  options.engine.max_queued_requests = 1;
  options.start_engine = false;  // the first request stays queued
  auto started = TestServer::Start(options);
  ASSERT_TRUE(started.ok()) << started.status();
  TestServer* server = started->get();
  auto stub = server->Stub();
  StreamResult first;
  std::thread t([&] { first = RunGenerate(stub.get(), IdsRequest({1, 2, 3}, 3)); });
  for (int i = 0; i < 500 && server->engine()->GetMetrics().num_waiting == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  StreamResult second = RunGenerate(stub.get(), IdsRequest({1, 2, 3}, 3));
  EXPECT_EQ(second.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(second.status.error_message(), HasSubstr("max_queued_requests"));
  server->StartEngine();
  t.join();
  EXPECT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.token_ids.size(), 3u);
}

TEST(AuthTest, ApiKeyIsRequiredFromBearerMetadata) {
  TestServerOptions options;
  options.model_dir = LlamaFixtureDir();
  options.server.api_keys = serving::ApiKeys({"s3cret", "other"});
  auto server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = (*server)->Stub();
  const v1::GenerateRequest request = IdsRequest({1, 2}, 2);
  StreamResult none = RunGenerate(stub.get(), request);
  EXPECT_EQ(none.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(none.status.error_message(), HasSubstr("authorization"));
  EXPECT_EQ(RunGenerate(stub.get(), request, "wrong").status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(RunGenerate(stub.get(), request, "s3cret").status.ok());
  EXPECT_TRUE(RunGenerate(stub.get(), request, "other").status.ok());
  grpc::ClientContext context;
  v1::ModelInfo info;
  EXPECT_EQ(stub->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Health stays open for probes.
  auto health = grpc::health::v1::Health::NewStub((*server)->Channel());
  grpc::ClientContext hc;
  grpc::health::v1::HealthCheckResponse hr;
  EXPECT_TRUE(health->Check(&hc, grpc::health::v1::HealthCheckRequest(), &hr).ok());
}

// On a trained model with a tokenizer: text in, text out, equal to the engine's own output.
// (tests/clients compares the CLI client with `moeserve generate`.)
TEST(Stories260kServerTest, TextStreamEqualsMoeserveGenerate) {
  const std::string dir = Stories260kDir();
  if (dir.empty()) GTEST_SKIP() << "shared data models/stories260K not found (set MOESERVE_TEST_DATA)";
  TestServerOptions options;
  options.model_dir = dir;
  auto server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = (*server)->Stub();

  v1::GenerateRequest request;
  request.set_text("Once upon a time");
  request.mutable_sampling()->set_max_tokens(60);
  request.mutable_sampling()->set_temperature(0.0f);
  StreamResult got = RunGenerate(stub.get(), request);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();

  auto tokenizer = Tokenizer::FromDirectory(dir);
  ASSERT_TRUE(tokenizer.ok());
  auto prompt = (*tokenizer)->Encode("Once upon a time", true);
  ASSERT_TRUE(prompt.ok());
  // What `moeserve generate` prints: the serving layer over the same engine.
  serving::Frontend frontend((*server)->engine(), {});
  serving::ServingRequest want_request;
  want_request.prompt = serving::TextPrompt{"Once upon a time"};
  want_request.sampling.max_tokens = 60;
  want_request.sampling.temperature = 0.0f;
  auto want_call = frontend.Submit(std::move(want_request));
  ASSERT_TRUE(want_call.ok()) << want_call.status();
  std::vector<int32_t> want_ids;
  std::string want_text;
  while (auto out = (*want_call)->Next(absl::Seconds(30))) {
    want_ids.insert(want_ids.end(), out->token_ids.begin(), out->token_ids.end());
    want_text += out->text;
    if (out->request_finished) break;
  }
  EXPECT_EQ(got.token_ids, want_ids);
  EXPECT_EQ(got.text, want_text);
  // The text deltas are the completion as the tokenizer decodes it after the prompt.
  std::vector<int32_t> all = *prompt;
  all.insert(all.end(), got.token_ids.begin(), got.token_ids.end());
  auto full = (*tokenizer)->Decode(all, true);
  auto prompt_text = (*tokenizer)->Decode(*prompt, true);
  ASSERT_TRUE(full.ok() && prompt_text.ok());
  EXPECT_EQ(*prompt_text + got.text, *full);
  EXPECT_THAT(got.text, ::testing::StartsWith(", there was a little girl named Lily"));

  // Stop strings cut the text before the match.
  request.mutable_sampling()->add_stop("Lily");
  StreamResult stopped = RunGenerate(stub.get(), request);
  ASSERT_TRUE(stopped.status.ok());
  EXPECT_EQ(stopped.text, ", there was a little girl named ");
  EXPECT_EQ(stopped.responses.back().finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(stopped.responses.back().stop_string(), "Lily");

  grpc::ClientContext c1;
  v1::TokenizeRequest t;
  t.set_text("Once upon a time");
  t.set_return_token_strings(true);
  v1::TokenizeResponse tr;
  ASSERT_TRUE(stub->Tokenize(&c1, t, &tr).ok());
  EXPECT_THAT(std::vector<int32_t>(tr.token_ids().begin(), tr.token_ids().end()), ::testing::ElementsAreArray(*prompt));
  EXPECT_EQ(tr.token_strings_size(), tr.token_ids_size());
  grpc::ClientContext c2;
  v1::DetokenizeRequest d;
  d.mutable_token_ids()->Add(prompt->begin(), prompt->end());
  v1::DetokenizeResponse dr;
  ASSERT_TRUE(stub->Detokenize(&c2, d, &dr).ok());
  EXPECT_EQ(dr.text(), "Once upon a time");
  grpc::ClientContext c3;
  d.add_token_ids(100000);
  auto bad = stub->Detokenize(&c3, d, &dr);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("token_ids["));
}

// A model whose tokenizer_config.json has a chat template: `messages` render through it, with
// the template's own special tokens (no extra BOS), for Generate and Tokenize alike.
TEST(Stories260kServerTest, MessagesRenderWithTheChatTemplate) {
  const std::string src = Stories260kDir();
  if (src.empty()) GTEST_SKIP() << "shared data models/stories260K not found (set MOESERVE_TEST_DATA)";
  const std::filesystem::path dir = MakeTempDir("chat-model");
  for (const auto& entry : std::filesystem::directory_iterator(src)) {
    std::filesystem::copy(entry.path(), dir / entry.path().filename());
  }
  {
    std::ifstream in(dir / "tokenizer_config.json");
    nlohmann::json config = nlohmann::json::parse(in);
    config["chat_template"] =
        "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}";
    std::ofstream(dir / "tokenizer_config.json") << config.dump();
  }
  TestServerOptions options;
  options.model_dir = dir.string();
  auto server = TestServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = (*server)->Stub();

  grpc::ClientContext c0;
  v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&c0, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_TRUE(info.has_chat_template());

  v1::TokenizeRequest by_messages;
  auto* m = by_messages.mutable_messages()->add_messages();
  m->set_role("user");
  m->set_content("Tell me a story");
  v1::TokenizeRequest by_text;
  by_text.set_text("<s>user: Tell me a story\nassistant:");
  by_text.set_add_special_tokens(false);
  grpc::ClientContext c1, c2;
  v1::TokenizeResponse r1, r2;
  ASSERT_TRUE(stub->Tokenize(&c1, by_messages, &r1).ok());
  ASSERT_TRUE(stub->Tokenize(&c2, by_text, &r2).ok());
  EXPECT_THAT(std::vector<int32_t>(r1.token_ids().begin(), r1.token_ids().end()),
              ::testing::ElementsAreArray(r2.token_ids()));
  EXPECT_EQ(r1.token_ids(0), 1);  // BOS from the template, once
  EXPECT_NE(r1.token_ids(1), 1);

  v1::GenerateRequest chat;
  *chat.mutable_messages() = by_messages.messages();
  chat.mutable_sampling()->set_max_tokens(8);
  chat.mutable_sampling()->set_temperature(0.0f);
  chat.mutable_sampling()->set_ignore_eos(true);
  v1::GenerateRequest ids = IdsRequest({r1.token_ids().begin(), r1.token_ids().end()}, 8);
  ids.mutable_sampling()->set_temperature(0.0f);
  StreamResult a = RunGenerate(stub.get(), chat);
  StreamResult b = RunGenerate(stub.get(), ids);
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(a.token_ids, b.token_ids);

  v1::GenerateRequest no_role = chat;
  no_role.mutable_messages()->mutable_messages(0)->clear_role();
  StreamResult bad = RunGenerate(stub.get(), no_role);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("messages.messages[0].role"));
}

}  // namespace
}  // namespace moeserve::testing
