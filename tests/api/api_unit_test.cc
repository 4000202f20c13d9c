// The pieces of server/api that need no server: API keys, proto conversion, the Prometheus text.

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/request_convert.h"
#include "server/api/serving_metrics.h"
#include "server/serving/api_keys.h"
#include "server/serving/request_validator.h"

namespace moeserve::api {
namespace {

using serving::ApiKeys;
using ::testing::HasSubstr;

TEST(ApiKeysTest, NoKeysAcceptsEverything) {
  ApiKeys keys;
  EXPECT_FALSE(keys.enabled());
  EXPECT_TRUE(keys.Check(nullptr).ok());
}

TEST(ApiKeysTest, BearerKeyIsChecked) {
  ApiKeys keys({"abc"});
  std::string_view good = "Bearer abc", lower = "bearer abc", wrong = "Bearer abd", prefix = "Bearer ab",
                   basic = "Basic abc";
  EXPECT_TRUE(keys.Check(&good).ok());
  EXPECT_TRUE(keys.Check(&lower).ok());
  EXPECT_EQ(keys.Check(&wrong).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Check(&prefix).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Check(&basic).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Check(nullptr).code(), absl::StatusCode::kUnauthenticated);
}

TEST(ApiKeysTest, LoadsAKeyFile) {
  const std::string path = ::testing::TempDir() + "/keys.txt";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("# comment\n  k1  \n\nk2\n", f);
  std::fclose(f);
  auto keys = ApiKeys::Load("flag", path);
  ASSERT_TRUE(keys.ok()) << keys.status();
  for (std::string_view h : {"Bearer flag", "Bearer k1", "Bearer k2"}) {
    EXPECT_TRUE(keys->Check(&h).ok()) << h;
  }
  std::string_view comment = "Bearer # comment";
  EXPECT_FALSE(keys->Check(&comment).ok());
  EXPECT_EQ(ApiKeys::Load("", "/nonexistent/keys").status().code(), absl::StatusCode::kNotFound);
}

TEST(RequestConvertTest, UnsetSamplingFieldsKeepTheEngineDefaults) {
  const SamplingParams defaults;
  const SamplingParams got = FromProto(v1::SamplingParams());
  EXPECT_EQ(got.max_tokens, defaults.max_tokens);
  EXPECT_EQ(got.temperature, defaults.temperature);
  EXPECT_EQ(got.top_p, defaults.top_p);
  EXPECT_EQ(got.repetition_penalty, defaults.repetition_penalty);
  EXPECT_FALSE(got.seed.has_value());
  EXPECT_FALSE(got.logprobs.has_value());
}

TEST(RequestConvertTest, EverySamplingFieldIsCarried) {
  v1::SamplingParams p;
  p.set_n(3);
  p.set_max_tokens(7);
  p.set_min_tokens(2);
  p.set_temperature(0.5f);
  p.set_top_k(4);
  p.set_top_p(0.9f);
  p.set_min_p(0.1f);
  p.set_repetition_penalty(1.2f);
  p.set_presence_penalty(0.3f);
  p.set_frequency_penalty(-0.3f);
  (*p.mutable_logit_bias())[5] = 2.5f;
  p.set_seed(99);
  p.add_stop_token_ids(3);
  p.set_ignore_eos(true);
  p.add_stop("END");
  p.set_logprobs(0);
  p.set_prompt_logprobs(1);
  const SamplingParams s = FromProto(p);
  EXPECT_EQ(s.max_tokens, 7);
  EXPECT_EQ(s.min_tokens, 2);
  EXPECT_EQ(s.n, 3);
  EXPECT_EQ(s.temperature, 0.5f);
  EXPECT_EQ(s.top_k, 4);
  EXPECT_EQ(s.top_p, 0.9f);
  EXPECT_EQ(s.min_p, 0.1f);
  EXPECT_EQ(s.repetition_penalty, 1.2f);
  EXPECT_EQ(s.presence_penalty, 0.3f);
  EXPECT_EQ(s.frequency_penalty, -0.3f);
  EXPECT_EQ(s.logit_bias.at(5), 2.5f);
  EXPECT_EQ(s.seed, 99u);
  EXPECT_THAT(s.stop_token_ids, ::testing::ElementsAre(3));
  EXPECT_TRUE(s.ignore_eos);
  EXPECT_THAT(s.stop, ::testing::ElementsAre("END"));
  EXPECT_EQ(s.logprobs, 0);
  EXPECT_EQ(s.prompt_logprobs, 1);
}

TEST(RequestConvertTest, SamplingErrorsNameTheProtoField) {
  v1::GenerateRequest request;
  request.mutable_token_ids()->add_ids(1);
  request.mutable_sampling()->set_temperature(-1);
  absl::StatusOr<serving::ServingRequest> converted = FromProto(request);
  ASSERT_TRUE(converted.ok()) << converted.status();
  const absl::Status status = serving::ValidateRequest(*converted, 1, {.vocab_size = 10, .max_n = 1});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), ::testing::StartsWith("sampling.temperature"));
  EXPECT_EQ(converted->names.prompt, "token_ids.ids");
}

TEST(RequestConvertTest, ProtoShapeIsChecked) {
  v1::GenerateRequest request;
  EXPECT_THAT(FromProto(request).status().message(), HasSubstr("exactly one"));
  request.set_text("");
  EXPECT_THAT(FromProto(request).status().message(), HasSubstr("text must not be empty"));
  request.set_text("hi");
  request.set_request_id(std::string(300, 'x'));
  EXPECT_THAT(FromProto(request).status().message(), HasSubstr("request_id"));
  request.clear_request_id();
  request.set_add_special_tokens(false);
  request.set_skip_special_tokens(false);
  absl::StatusOr<serving::ServingRequest> converted = FromProto(request);
  ASSERT_TRUE(converted.ok());
  EXPECT_EQ(std::get<serving::TextPrompt>(converted->prompt).text, "hi");
  EXPECT_FALSE(std::get<serving::TextPrompt>(converted->prompt).add_special_tokens);
  EXPECT_FALSE(converted->skip_special_tokens);
  EXPECT_EQ(converted->names.prompt, "text");
}

TEST(RequestConvertTest, FinalDeltaCarriesUsageAndTimings) {
  serving::Output d;
  d.index = 2;
  d.token_ids = {4, 5};
  d.text = "ab";
  d.finished = true;
  d.finish_reason = FinishReason::kStop;
  d.stop_token_id = 5;
  d.usage = {.prompt_tokens = 3, .completion_tokens = 2, .cached_tokens = 1};
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  d.timings = {.arrival = t0,
               .first_scheduled = t0 + absl::Milliseconds(10),
               .first_token = t0 + absl::Milliseconds(30),
               .finish = t0 + absl::Milliseconds(50)};
  v1::GenerateResponse r;
  ToProto(d, &r);
  EXPECT_EQ(r.index(), 2);
  EXPECT_EQ(r.text(), "ab");
  EXPECT_EQ(r.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(r.stop_token_id(), 5);
  EXPECT_EQ(r.usage().cached_tokens(), 1);
  EXPECT_NEAR(r.timings().queue_seconds(), 0.01, 1e-9);
  EXPECT_NEAR(r.timings().time_to_first_token_seconds(), 0.03, 1e-9);
  EXPECT_NEAR(r.timings().e2e_seconds(), 0.05, 1e-9);
}

TEST(ServingMetricsTest, HistogramIsCumulative) {
  Histogram h({0.1, 1.0});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5.0);
  std::string out;
  h.Render("x", &out);
  EXPECT_EQ(out,
            "x_bucket{le=\"0.1\"} 1\nx_bucket{le=\"1\"} 2\nx_bucket{le=\"+Inf\"} 3\n"
            "x_sum 5.55\nx_count 3\n");
}

TEST(ServingMetricsTest, PageHasEveryMetricOfTheIssue) {
  ServingMetrics metrics;
  EngineMetrics engine;
  engine.kv_blocks_total = 10;
  engine.requests_finished_stop = 3;
  const std::string page = metrics.RenderPrometheus(engine);
  for (const char* name :
       {"moeserve_time_to_first_token_seconds", "moeserve_inter_token_latency_seconds",
        "moeserve_e2e_request_latency_seconds", "moeserve_request_queue_time_seconds", "moeserve_requests_running",
        "moeserve_requests_waiting", "moeserve_kv_cache_blocks_used", "moeserve_kv_cache_blocks_cached",
        "moeserve_kv_cache_blocks_total", "moeserve_prompt_tokens_total", "moeserve_generation_tokens_total",
        "moeserve_prefix_cache_queries_total", "moeserve_prefix_cache_hits_total", "moeserve_requests_total"}) {
    EXPECT_THAT(page, HasSubstr(absl::StrCat("# TYPE ", name, " "))) << name;
  }
  EXPECT_THAT(page, HasSubstr("moeserve_kv_cache_blocks_total 10\n"));
  EXPECT_THAT(page, HasSubstr("moeserve_requests_total{finish_reason=\"stop\"} 3\n"));
}

// The Gateway API Inference Extension's endpoint picker reads queued and running requests, the
// KV cache utilisation as a fraction, and block size and block count as labels of an info gauge.
TEST(ServingMetricsTest, GatewayInferenceExtensionSeries) {
  EngineMetrics engine;
  engine.num_waiting = 3;
  engine.num_running = 5;
  engine.kv_blocks_total = 1000;
  engine.kv_blocks_used = 250;
  engine.kv_usage = 0.25;
  engine.kv_block_size = 16;
  const std::string page = ServingMetrics().RenderPrometheus(engine);
  EXPECT_THAT(page, HasSubstr("# TYPE moeserve_requests_waiting gauge\nmoeserve_requests_waiting 3\n"));
  EXPECT_THAT(page, HasSubstr("# TYPE moeserve_requests_running gauge\nmoeserve_requests_running 5\n"));
  EXPECT_THAT(page, HasSubstr("# TYPE moeserve_kv_cache_usage_ratio gauge\n"
                              "moeserve_kv_cache_usage_ratio 0.25\n"));
  EXPECT_THAT(page, HasSubstr("# TYPE moeserve_cache_config_info gauge\n"
                              "moeserve_cache_config_info{block_size=\"16\",num_gpu_blocks=\"1000\"} 1\n"));
}

TEST(ServingMetricsTest, ExpertLoadSummedOverLayersByDefaultOrPerLayer) {
  EngineMetrics engine;
  EXPECT_THAT(ServingMetrics().RenderPrometheus(engine),
              ::testing::Not(HasSubstr("moeserve_moe_expert_tokens_total")));  // dense model
  auto load = std::make_shared<ExpertLoad>();
  load->layers = {1, 3};
  load->num_experts = 3;
  load->tokens = {5, 0, 7, 1, 2, 3};
  engine.expert_load = load;
  const std::string summed = ServingMetrics().RenderPrometheus(engine);
  EXPECT_THAT(summed, HasSubstr("# TYPE moeserve_moe_expert_tokens_total counter\n"));
  EXPECT_THAT(summed, HasSubstr("moeserve_moe_layers 2\n"));
  EXPECT_THAT(summed, HasSubstr("moeserve_moe_expert_tokens_total{expert=\"0\"} 6\n"
                                "moeserve_moe_expert_tokens_total{expert=\"1\"} 2\n"
                                "moeserve_moe_expert_tokens_total{expert=\"2\"} 10\n"));
  EXPECT_THAT(summed, ::testing::Not(HasSubstr("layer=")));
  const std::string per_layer = ServingMetrics({.expert_load_per_layer = true}).RenderPrometheus(engine);
  EXPECT_THAT(per_layer, HasSubstr("moeserve_moe_expert_tokens_total{layer=\"1\",expert=\"0\"} 5\n"));
  EXPECT_THAT(per_layer, HasSubstr("moeserve_moe_expert_tokens_total{layer=\"3\",expert=\"2\"} 3\n"));
  EXPECT_THAT(per_layer, ::testing::Not(HasSubstr("{expert=")));
}

}  // namespace
}  // namespace moeserve::api
