// Speculative decoding through the engine: greedy ids identical with and without speculation on
// every fixture (k = 1..4), alone and in mixed batches with preemption forced by a small KV cache;
// logprobs and seeded sampling equal to plain decoding's; stop strings and max_tokens never
// overshot; n > 1; metrics.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "server/serving/output_processor.h"
#include "tests/engine/engine_test_util.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using ::moeserve::testing::Greedy;
using ::moeserve::testing::MakeEngine;
using ::moeserve::testing::MakeFixtureEngine;
using ::moeserve::testing::RandomRequests;
using ::moeserve::testing::RoomyConfig;
using ::moeserve::testing::RunAll;

const char* const kFixtures[] = {"llama",           "llama3_tied",        "llama_linear",   "qwen2",
                                 "mixtral",         "deepseek_v2_lite",   "deepseek_v2",    "deepseek_v3",
                                 "deepseek_v3_fp8", "qwen2_bf16_sharded", "deepseek_v3_mtp"};

std::string DefaultModelDir() {
  return (moeserve::testing::FixturesDir().parent_path().parent_path() / "models" / "default").string();
}

EngineConfig WithNgram(EngineConfig c, int32_t k) {
  c.speculative.method = SpeculativeMethod::kNgram;
  c.speculative.num_speculative_tokens = k;
  c.speculative.ngram = {.min_n = 1, .max_n = 3};
  c.speculative.disable_batch_size = 0;  // always on: the tests compare every step
  c.speculative.min_acceptance = 0.0;
  c.check_integrity_every_step = true;
  return c;
}

// Prompts that repeat themselves (n-gram drafts find matches) and random ones.
std::vector<EngineRequest> Requests(int32_t vocab, uint32_t seed) {
  std::vector<EngineRequest> out = RandomRequests(6, vocab, moeserve::testing::kFixtureMaxModelLen, seed);
  for (int r = 0; r < 3; ++r) {
    EngineRequest req;
    for (int rep = 0; rep < 3; ++rep) {
      for (int j = 0; j < 4 + r; ++j) req.prompt_token_ids.push_back((7 * j + 11 * r + seed) % vocab);
    }
    req.sampling = Greedy(24);
    out.push_back(std::move(req));
  }
  return out;
}

std::vector<std::vector<int32_t>> Ids(const std::vector<RequestOutput>& outputs) {
  std::vector<std::vector<int32_t>> ids;
  for (const RequestOutput& o : outputs) ids.push_back(o.token_ids);
  return ids;
}

class SpeculativeFixtureTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SpeculativeFixtureTest, GreedyIdsEqualPlainDecodingAloneAndBatched) {
  auto plain_engine = MakeFixtureEngine(GetParam(), RoomyConfig());
  ASSERT_NE(plain_engine, nullptr);
  const int32_t vocab = plain_engine->vocab_size();
  const std::vector<EngineRequest> requests = Requests(vocab, 3);
  const auto plain = Ids(RunAll(*plain_engine, requests));
  int64_t drafted = 0, accepted = 0;
  for (int32_t k = 1; k <= 4; ++k) {
    // Alone: one request at a time.
    auto alone = MakeFixtureEngine(GetParam(), WithNgram(RoomyConfig(), k));
    ASSERT_NE(alone, nullptr);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(Ids(RunAll(*alone, {requests[i]})).at(0), plain[i]) << "k " << k << " request " << i;
    }
    // Batched in a small cache: chunked prefill and preemption.
    EngineConfig tight = WithNgram(RoomyConfig(), k);
    tight.num_kv_blocks = 40;  // 39 blocks of 4 tokens for 9 requests of up to 64
    tight.max_num_batched_tokens = 32;
    tight.max_num_seqs = 16;
    auto batched = MakeFixtureEngine(GetParam(), tight);
    ASSERT_NE(batched, nullptr);
    EXPECT_EQ(Ids(RunAll(*batched, requests)), plain) << "k " << k;
    const EngineMetrics m = batched->GetMetrics();
    EXPECT_GT(m.num_preemptions, 0) << "k " << k;
    EXPECT_EQ(m.kv_blocks_used, 0);
    drafted += m.spec_decode.draft_tokens + alone->GetMetrics().spec_decode.draft_tokens;
    accepted += m.spec_decode.accepted_tokens + alone->GetMetrics().spec_decode.accepted_tokens;
  }
  EXPECT_GT(drafted, 0);
  EXPECT_GT(accepted, 0);
  std::printf("%s: %lld drafts, %lld accepted\n", GetParam(), static_cast<long long>(drafted),
              static_cast<long long>(accepted));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SpeculativeFixtureTest, ::testing::ValuesIn(kFixtures));

EngineConfig WithMtp(EngineConfig c, int32_t k) {
  c = WithNgram(std::move(c), k);
  c.speculative.method = SpeculativeMethod::kMtp;
  return c;
}

// MTP drafts on the fixtures with an MTP layer: the random deepseek_v3_mtp and the default model.
class MtpEngineTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MtpEngineTest, GreedyIdsEqualPlainDecodingAloneAndBatched) {
  auto plain_engine = MakeEngine(GetParam(), RoomyConfig());
  ASSERT_NE(plain_engine, nullptr);
  const std::vector<EngineRequest> requests = Requests(plain_engine->vocab_size(), 4);
  const auto plain = Ids(RunAll(*plain_engine, requests));
  int64_t drafted = 0, accepted = 0;
  for (int32_t k = 1; k <= 4; ++k) {
    auto alone = MakeEngine(GetParam(), WithMtp(RoomyConfig(), k));
    ASSERT_NE(alone, nullptr);
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(Ids(RunAll(*alone, {requests[i]})).at(0), plain[i]) << "k " << k << " request " << i;
    }
    EngineConfig tight = WithMtp(RoomyConfig(), k);
    tight.num_kv_blocks = 40;
    tight.max_num_batched_tokens = 32;
    tight.max_num_seqs = 16;
    auto batched = MakeEngine(GetParam(), tight);
    ASSERT_NE(batched, nullptr);
    EXPECT_EQ(Ids(RunAll(*batched, requests)), plain) << "k " << k;
    EXPECT_GT(batched->GetMetrics().num_preemptions, 0) << "k " << k;
    EXPECT_EQ(batched->GetMetrics().kv_blocks_used, 0);
    for (Engine* e : {alone.get(), batched.get()}) {
      drafted += e->GetMetrics().spec_decode.draft_tokens;
      accepted += e->GetMetrics().spec_decode.accepted_tokens;
    }
  }
  EXPECT_GT(drafted, 0);
  std::printf("%s: %lld MTP drafts, %lld accepted\n", GetParam().c_str(), static_cast<long long>(drafted),
              static_cast<long long>(accepted));
}

INSTANTIATE_TEST_SUITE_P(Models, MtpEngineTest,
                         ::testing::Values((moeserve::testing::FixturesDir() / "models" / "deepseek_v3_mtp").string(),
                                           DefaultModelDir()),
                         [](const auto& info) { return std::filesystem::path(info.param).filename().string(); });

// The default model's trained MTP layer drafts well: most drafts of a greedy story are accepted.
TEST(SpeculativeEngineTest, DefaultModelMtpAcceptsMostDrafts) {
  EngineConfig c = WithMtp(EngineConfig{}, 3);
  c.model_dir = DefaultModelDir();
  c.num_threads = 1;
  auto engine = Engine::Create(c);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EngineRequest r;
  r.prompt_token_ids = {1};
  r.sampling = Greedy(200);
  const RequestOutput out = RunAll(**engine, {r}).at(0);
  EXPECT_EQ(out.token_ids.size(), 200u);
  const SpecDecodeMetrics m = (*engine)->GetMetrics().spec_decode;
  ASSERT_GT(m.draft_tokens, 0);
  const double acceptance = static_cast<double>(m.accepted_tokens) / m.draft_tokens;
  std::printf("default model, MTP k=3: %lld drafts, acceptance %.3f, per position %.3f %.3f %.3f\n",
              static_cast<long long>(m.draft_tokens), acceptance,
              static_cast<double>(m.accepted_tokens_per_position[0]) / m.draft_tokens_per_position[0],
              static_cast<double>(m.accepted_tokens_per_position[1]) / m.draft_tokens_per_position[1],
              static_cast<double>(m.accepted_tokens_per_position[2]) / m.draft_tokens_per_position[2]);
  EXPECT_GT(acceptance, 0.4);
  // Acceptance falls with the draft position: a draft is verified only after its predecessors.
  EXPECT_GE(m.accepted_tokens_per_position[0], m.accepted_tokens_per_position[2]);
}

TEST(SpeculativeEngineTest, LogprobsAndSeededSamplingEqualPlainDecoding) {
  auto plain_engine = MakeFixtureEngine("deepseek_v3", RoomyConfig());
  auto spec_engine = MakeFixtureEngine("deepseek_v3", WithNgram(RoomyConfig(), 3));
  ASSERT_NE(plain_engine, nullptr);
  ASSERT_NE(spec_engine, nullptr);
  std::vector<EngineRequest> requests = Requests(plain_engine->vocab_size(), 5);
  for (size_t i = 0; i < requests.size(); ++i) {
    requests[i].sampling.logprobs = 3;
    if (i % 2 == 1) {  // seeded sampling, with penalties and filters on both sides
      requests[i].sampling.temperature = 0.8f;
      requests[i].sampling.top_k = 20;
      requests[i].sampling.top_p = 0.95f;
      requests[i].sampling.repetition_penalty = 1.1f;
      requests[i].sampling.seed = 1000 + i;
    }
  }
  const std::vector<RequestOutput> plain = RunAll(*plain_engine, requests);
  const std::vector<RequestOutput> spec = RunAll(*spec_engine, requests);
  ASSERT_EQ(plain.size(), spec.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(spec[i].token_ids, plain[i].token_ids) << "request " << i;
    ASSERT_EQ(spec[i].logprobs.size(), plain[i].logprobs.size());
    for (size_t t = 0; t < plain[i].logprobs.size(); ++t) {
      EXPECT_NEAR(spec[i].logprobs[t].logprob, plain[i].logprobs[t].logprob, 1e-4);
      ASSERT_EQ(spec[i].logprobs[t].top.size(), 3u);
      for (size_t j = 0; j < 3; ++j) {
        EXPECT_EQ(spec[i].logprobs[t].top[j].token_id, plain[i].logprobs[t].top[j].token_id);
        EXPECT_NEAR(spec[i].logprobs[t].top[j].logprob, plain[i].logprobs[t].top[j].logprob, 1e-4);
      }
    }
    EXPECT_EQ(spec[i].usage.completion_tokens, plain[i].usage.completion_tokens);
  }
  EXPECT_GT(spec_engine->GetMetrics().spec_decode.accepted_tokens, 0);
}

TEST(SpeculativeEngineTest, ParallelSamplesSpeculateEach) {
  auto plain_engine = MakeFixtureEngine("llama", RoomyConfig());
  auto spec_engine = MakeFixtureEngine("llama", WithNgram(RoomyConfig(), 4));
  ASSERT_NE(plain_engine, nullptr);
  ASSERT_NE(spec_engine, nullptr);
  EngineRequest r = Requests(plain_engine->vocab_size(), 9).back();
  r.sampling.n = 3;
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 42;
  std::vector<std::vector<std::vector<int32_t>>> samples;
  for (Engine* engine : {plain_engine.get(), spec_engine.get()}) {
    auto stream = engine->AddRequest(r);
    ASSERT_TRUE(stream.ok()) << stream.status();
    moeserve::testing::RunChecked(*engine);
    std::vector<std::vector<int32_t>> by_index;
    for (const RequestOutput& o : (*stream)->WaitForCompletions()) {
      if (by_index.size() <= static_cast<size_t>(o.index)) by_index.resize(o.index + 1);
      by_index[o.index] = o.token_ids;
    }
    samples.push_back(by_index);
  }
  ASSERT_EQ(samples[0].size(), 3u);
  EXPECT_EQ(samples[1], samples[0]);
  EXPECT_NE(samples[0][0], samples[0][1]);  // the samples differ from each other
  EXPECT_GT(spec_engine->GetMetrics().spec_decode.draft_tokens, 0);
}

// What a client sees of one greedy request: the engine's deltas through the serving layer's
// output processing (detokenizing, stop strings), which drops tokens past a stop string.
serving::Output ClientView(Engine& engine, const EngineRequest& request) {
  auto stream = engine.AddRequest(request);
  EXPECT_TRUE(stream.ok()) << stream.status();
  moeserve::testing::RunChecked(engine);
  serving::SampleOutputProcessor processor(engine.tokenizer(), request.prompt_token_ids, request.sampling, {});
  serving::Output merged;
  while (!processor.finished()) {
    std::optional<RequestOutput> delta = (*stream)->Next(absl::Seconds(5));
    if (!delta.has_value()) break;
    serving::Output out = processor.Process(*delta);
    merged.text += out.text;
    merged.token_ids.insert(merged.token_ids.end(), out.token_ids.begin(), out.token_ids.end());
    if (out.finished) {
      merged.finish_reason = out.finish_reason;
      merged.stop_string = out.stop_string;
    }
  }
  return merged;
}

TEST(SpeculativeEngineTest, StopStringsAndMaxTokensAreNeverOvershot) {
  EngineConfig base;
  base.model_dir = DefaultModelDir();
  base.num_threads = 1;
  auto plain_engine = Engine::Create(base);
  ASSERT_TRUE(plain_engine.ok()) << plain_engine.status();
  EngineRequest r;
  r.prompt_token_ids =
      *(*plain_engine)
           ->tokenizer()
           ->Encode(
               "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
               "park. Once upon a time, there was a little",
               /*add_special_tokens=*/true);
  r.sampling = Greedy(60);
  r.sampling.ignore_eos = false;
  const serving::Output plain = ClientView(**plain_engine, r);
  ASSERT_GT(plain.text.size(), 20u);
  // A stop string in the middle of the plain output, and a max_tokens cut.
  const std::string stop = plain.text.substr(plain.text.size() / 2, 6);
  EngineRequest with_stop = r;
  with_stop.sampling.stop = {stop};
  EngineRequest short_one = r;
  short_one.sampling.max_tokens = 7;
  const serving::Output stopped = ClientView(**plain_engine, with_stop);
  const serving::Output cut = ClientView(**plain_engine, short_one);
  ASSERT_EQ(stopped.finish_reason, FinishReason::kStop);
  for (const SpeculativeMethod method : {SpeculativeMethod::kNgram, SpeculativeMethod::kMtp}) {
    for (int32_t k = 1; k <= 4; ++k) {
      EngineConfig c = WithNgram(base, k);
      c.speculative.method = method;
      auto spec_engine = Engine::Create(c);
      ASSERT_TRUE(spec_engine.ok()) << spec_engine.status();
      const serving::Output got = ClientView(**spec_engine, r);
      EXPECT_EQ(got.token_ids, plain.token_ids) << "k " << k;
      EXPECT_EQ(got.text, plain.text);
      const serving::Output got_stop = ClientView(**spec_engine, with_stop);
      EXPECT_EQ(got_stop.text, stopped.text) << "k " << k;
      EXPECT_EQ(got_stop.token_ids, stopped.token_ids) << "k " << k;
      EXPECT_EQ(got_stop.finish_reason, FinishReason::kStop);
      EXPECT_EQ(got_stop.stop_string, stop);
      const serving::Output got_cut = ClientView(**spec_engine, short_one);
      EXPECT_EQ(got_cut.token_ids, cut.token_ids) << "k " << k;
      EXPECT_EQ(got_cut.finish_reason, FinishReason::kLength);
      EXPECT_GT((*spec_engine)->GetMetrics().spec_decode.accepted_tokens, 0);
      (*spec_engine)->RunUntilIdle();
      EXPECT_EQ((*spec_engine)->GetMetrics().kv_blocks_used, 0);
    }
  }
}

TEST(SpeculativeEngineTest, MtpWithoutAnMtpLayerIsAClearError) {
  EngineConfig c = RoomyConfig();
  c.speculative.method = SpeculativeMethod::kMtp;
  auto backend = CreateBackend({.device = "cpu", .num_threads = 1});
  ASSERT_TRUE(backend.ok());
  auto model = LoadModel((moeserve::testing::FixturesDir() / "models" / "llama").string(), backend->get());
  ASSERT_TRUE(model.ok());
  auto engine = Engine::Create(c, EngineParts{.backend = std::move(*backend), .model = std::move(*model)});
  ASSERT_FALSE(engine.ok());
  EXPECT_THAT(engine.status().message(), ::testing::HasSubstr("multi-token-prediction"));
  auto backend2 = CreateBackend({.device = "cpu", .num_threads = 1});
  ASSERT_TRUE(backend2.ok());
  auto model2 = LoadModel((moeserve::testing::FixturesDir() / "models" / "llama").string(), backend2->get());
  ASSERT_TRUE(model2.ok());
  auto bad = Engine::Create(WithNgram(RoomyConfig(), 0),
                            EngineParts{.backend = std::move(*backend2), .model = std::move(*model2)});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("--num-speculative-tokens"));
}

}  // namespace
}  // namespace moeserve
