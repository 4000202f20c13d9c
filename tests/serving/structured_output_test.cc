// Structured output through the serving layer and the engine on the default model (a small random
// DeepSeek-V3-architecture model: the masks alone keep it valid): every finished output matches
// its constraint, checked here with std::regex and nlohmann::json (tests/structured/acceptance
// adds Python's jsonschema, lark and 100+ schemas over gRPC); bad constraints are refused quickly
// with INVALID_ARGUMENT naming the client's field, and the engine keeps serving.

#include "server/serving/structured_output.h"

#include <regex>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/serving/frontend.h"

namespace moeserve::serving {
namespace {

using structured::Constraint;
using ::testing::HasSubstr;

struct Completion {
  std::string text;
  std::vector<int32_t> token_ids;
  FinishReason finish_reason = FinishReason::kNone;
  std::string error;
};

class StructuredOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineConfig c;
    c.model_dir = MOESERVE_SOURCE_DIR "/models/default";
    c.num_threads = 1;
    c.max_model_len = 256;
    auto engine = Engine::Create(c);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
    engine_->Start();
    frontend_ = std::make_unique<Frontend>(engine_.get(), FrontendOptions{});
  }

  ServingRequest Request(const Constraint& constraint, float temperature, int n, int32_t max_tokens,
                         uint64_t seed = 1) {
    ServingRequest r;
    r.prompt = TextPrompt{"Once upon a time"};
    r.sampling.temperature = temperature;
    r.sampling.max_tokens = max_tokens;
    r.sampling.n = n;
    r.sampling.seed = seed;
    r.sampling.constraint = constraint;
    r.names.sampling_prefix = "sampling.";
    return r;
  }

  // Every completion of the request, by index (through `frontend`, default frontend_).
  std::vector<Completion> Generate(ServingRequest request, Frontend* frontend = nullptr) {
    const int n = request.sampling.n;
    auto call = (frontend != nullptr ? frontend : frontend_.get())->Submit(std::move(request));
    EXPECT_TRUE(call.ok()) << call.status();
    if (!call.ok()) return {};
    std::vector<Completion> out(n);
    while (std::optional<Output> delta = (*call)->Next(absl::Seconds(60))) {
      Completion& c = out[delta->index];
      c.text += delta->text;
      c.token_ids.insert(c.token_ids.end(), delta->token_ids.begin(), delta->token_ids.end());
      if (delta->finished) {
        c.finish_reason = delta->finish_reason;
        c.error = delta->error.ToString();
      }
      if (delta->request_finished) break;
    }
    return out;
  }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Frontend> frontend_;
};

TEST_F(StructuredOutputTest, RegexOutputsMatch) {
  const std::string pattern = "(Once|Lily|The) [a-z]{2,8}( [a-z]{1,8}){0,4}\\.";
  int finished = 0;
  for (float temperature : {0.0f, 1.0f}) {
    for (const Completion& c :
         Generate(Request({.kind = Constraint::Kind::kRegex, .value = pattern}, temperature, 6, 40))) {
      ASSERT_NE(c.finish_reason, FinishReason::kError) << c.error;
      if (c.finish_reason != FinishReason::kStop) continue;
      ++finished;
      EXPECT_TRUE(std::regex_match(c.text, std::regex(pattern))) << "\"" << c.text << "\"";
    }
  }
  EXPECT_GT(finished, 0);
}

TEST_F(StructuredOutputTest, JsonSchemaOutputsValidate) {
  const std::string schema = R"({"type":"object","properties":{
      "name":{"type":"string","maxLength":10},"age":{"type":"integer","minimum":0,"maximum":120},
      "pet":{"enum":["cat","dog"]}},"required":["name","age"]})";
  int finished = 0;
  for (float temperature : {0.0f, 1.0f}) {
    for (const Completion& c :
         Generate(Request({.kind = Constraint::Kind::kJsonSchema, .value = schema}, temperature, 6, 80, 7))) {
      ASSERT_NE(c.finish_reason, FinishReason::kError) << c.error;
      if (c.finish_reason != FinishReason::kStop) continue;
      ++finished;
      const nlohmann::json j = nlohmann::json::parse(c.text, nullptr, false);
      ASSERT_TRUE(j.is_object()) << c.text;
      ASSERT_TRUE(j["name"].is_string()) << c.text;
      EXPECT_LE(j["name"].get<std::string>().size(), 10u) << c.text;
      ASSERT_TRUE(j["age"].is_number_integer()) << c.text;
      EXPECT_GE(j["age"].get<int>(), 0);
      EXPECT_LE(j["age"].get<int>(), 120);
      if (j.contains("pet")) {
        EXPECT_TRUE(j["pet"] == "cat" || j["pet"] == "dog") << c.text;
      }
    }
  }
  EXPECT_GT(finished, 0);
}

// min_tokens beyond what the grammar can produce: the grammar wins. Every sample ends with the
// finish reason "stop" as soon as the output is complete (before min_tokens), none fails or runs
// to max_tokens; a grammar that can go on is held to min_tokens.
TEST_F(StructuredOutputTest, MinTokensYieldsToAGrammarThatMustEnd) {
  for (float temperature : {0.0f, 1.0f}) {
    ServingRequest r = Request({.kind = Constraint::Kind::kRegex, .value = "(yes|no)"}, temperature, 4, 40);
    r.sampling.min_tokens = 30;
    for (const Completion& c : Generate(std::move(r))) {
      ASSERT_EQ(c.finish_reason, FinishReason::kStop) << c.error << " \"" << c.text << "\"";
      EXPECT_TRUE(c.text == "yes" || c.text == "no") << c.text;
      EXPECT_LT(c.token_ids.size(), 30u);
    }
    r = Request({.kind = Constraint::Kind::kRegex, .value = "[a-z]{1,200}"}, temperature, 2, 40);
    r.sampling.min_tokens = 12;
    for (const Completion& c : Generate(std::move(r))) {
      ASSERT_NE(c.finish_reason, FinishReason::kError) << c.error;
      EXPECT_GE(c.token_ids.size(), 12u) << c.text;
      EXPECT_TRUE(std::regex_match(c.text, std::regex("[a-z]{1,200}"))) << c.text;
    }
  }
}

TEST_F(StructuredOutputTest, GrammarAndJsonObject) {
  const std::string grammar = "root ::= word (\", \" word){1,3} \".\"\nword ::= [a-z]{2,6}\n";
  int finished = 0;
  for (const Completion& c : Generate(Request({.kind = Constraint::Kind::kGrammar, .value = grammar}, 1.0f, 6, 40))) {
    ASSERT_NE(c.finish_reason, FinishReason::kError) << c.error;
    if (c.finish_reason != FinishReason::kStop) continue;
    ++finished;
    EXPECT_TRUE(std::regex_match(c.text, std::regex("[a-z]{2,6}(, [a-z]{2,6}){1,3}\\."))) << c.text;
  }
  for (const Completion& c : Generate(Request({.kind = Constraint::Kind::kJsonObject}, 1.0f, 6, 60))) {
    ASSERT_NE(c.finish_reason, FinishReason::kError) << c.error;
    if (c.finish_reason != FinishReason::kStop) continue;
    ++finished;
    EXPECT_TRUE(nlohmann::json::parse(c.text, nullptr, false).is_object()) << c.text;
  }
  EXPECT_GT(finished, 0);
}

// Triggered tool calls (tool_choice "auto" with strict tools, here with a made-up markup the random
// model writes often: the trigger "?", given a logit bias): the text is free, and every call that
// appears is "[" + a JSON object valid under the schema + "]"; at most 3 calls.
TEST_F(StructuredOutputTest, TriggeredCallsValidateWhereverTheyAppear) {
  const nlohmann::json spec = {
      {"trigger", "?"},
      {"max_triggers", 3},
      {"tool_calls",
       {{"max_calls", 1},
        {"calls",
         {{{"before", "["},
           {"arguments",
            {{"type", "object"},
             {"properties",
              {{"n", {{"type", "integer"}, {"minimum", 0}, {"maximum", 99}}}, {"pet", {{"enum", {"cat", "dog"}}}}}},
             {"required", {"n", "pet"}},
             {"additionalProperties", false}}},
           {"after", "]"}}}}}}};
  int calls = 0;
  for (uint64_t seed : {1, 2, 3}) {
    ServingRequest r = Request({.kind = Constraint::Kind::kTriggered, .value = spec.dump()}, 1.0f, 6, 120, seed);
    r.sampling.logit_bias = {{450, 4.0f}};  // "?" in the default vocabulary
    for (const Completion& c : Generate(std::move(r))) {
      ASSERT_NE(c.finish_reason, FinishReason::kError) << c.error;
      int in_text = 0;
      for (size_t pos = 0, at; (at = c.text.find('?', pos)) != std::string::npos; pos = at) {
        const size_t close = c.text.find(']', at);
        if (close == std::string::npos) {  // cut by max_tokens inside the call
          EXPECT_EQ(c.finish_reason, FinishReason::kLength) << c.text;
          break;
        }
        ASSERT_EQ(c.text[at + 1], '[') << c.text;
        const nlohmann::json j = nlohmann::json::parse(c.text.substr(at + 2, close - at - 2), nullptr, false);
        ASSERT_TRUE(j.is_object()) << c.text;
        EXPECT_EQ(j.size(), 2u) << c.text;
        ASSERT_TRUE(j["n"].is_number_integer()) << c.text;
        EXPECT_GE(j["n"].get<int>(), 0);
        EXPECT_LE(j["n"].get<int>(), 99);
        EXPECT_TRUE(j["pet"] == "cat" || j["pet"] == "dog") << c.text;
        ++in_text;
        at = close + 1;
      }
      EXPECT_LE(in_text, 3) << c.text;
      calls += in_text;
    }
  }
  EXPECT_GE(calls, 3) << "the biased trigger should open calls";
}

TEST_F(StructuredOutputTest, MaxTokensEndsWithLengthAndACutOutput) {
  const auto outs = Generate(Request(
      {.kind = Constraint::Kind::kJsonSchema,
       .value = R"({"type":"object","properties":{"story":{"type":"string","minLength":50}},"required":["story"]})"},
      0.0f, 1, 5));
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].finish_reason, FinishReason::kLength);
  EXPECT_EQ(outs[0].token_ids.size(), 5u);
  const std::string start = "{\"story\":\"";  // the output is cut wherever the 5th token ends
  EXPECT_TRUE(start.rfind(outs[0].text, 0) == 0 || outs[0].text.rfind(start, 0) == 0) << outs[0].text;
}

TEST_F(StructuredOutputTest, StopTokenIdsOnlyWhereTheOutputIsComplete) {
  // The request's own stop id (a digit's token would otherwise be allowed anywhere).
  ServingRequest r = Request({.kind = Constraint::Kind::kRegex, .value = "[a-z]{3,5}"}, 1.0f, 6, 20, 3);
  r.sampling.stop_token_ids = {2};  // the model's EOS id too: both only after 3 to 5 letters
  for (const Completion& c : Generate(std::move(r))) {
    ASSERT_NE(c.finish_reason, FinishReason::kError) << c.error;
    if (c.finish_reason != FinishReason::kStop) continue;
    EXPECT_TRUE(std::regex_match(c.text, std::regex("[a-z]{3,5}"))) << c.text;
  }
}

TEST_F(StructuredOutputTest, BadConstraintsAreRefusedQuicklyNamingTheField) {
  std::string huge = R"({"type":"object","properties":{)";
  for (int i = 0; huge.size() < (10 << 20); ++i) huge += "\"p" + std::to_string(i) + "\":{\"type\":\"string\"},";
  huge += R"("end":{"type":"null"}}})";
  const struct {
    Constraint constraint;
    const char* field;
    const char* message;
  } cases[] = {
      {{.kind = Constraint::Kind::kJsonSchema, .value = R"({"type": "object", "properties": )"},
       "sampling.json_schema",
       "invalid JSON"},
      {{.kind = Constraint::Kind::kJsonSchema,
        .value = R"({"$ref":"#/$defs/a","$defs":{"a":{"type":"array","items":{"$ref":"#/$defs/a"},"minItems":1}}})"},
       "sampling.json_schema",
       "no finite derivation"},
      {{.kind = Constraint::Kind::kJsonSchema, .value = huge}, "sampling.json_schema", "sampling.json_schema is "},
      {{.kind = Constraint::Kind::kRegex, .value = "(a|b)*a(a|b){40}"}, "sampling.regex", "limit"},
      {{.kind = Constraint::Kind::kRegex, .value = "(a)\\1"}, "sampling.regex", "backreferences"},
      {{.kind = Constraint::Kind::kGrammar, .value = "root ::= x\n"}, "sampling.grammar", "undefined rule"},
      {{.kind = Constraint::Kind::kJsonSchema, .value = R"({"type":"string","uniqueItems":true})"},
       "sampling.json_schema",
       "uniqueItems"},
  };
  for (const auto& c : cases) {
    const absl::Time start = absl::Now();
    auto call = frontend_->Submit(Request(c.constraint, 0.0f, 1, 4));
    EXPECT_LT(absl::Now() - start, absl::Seconds(15)) << c.message;
    ASSERT_FALSE(call.ok()) << c.message;
    EXPECT_EQ(call.status().code(), absl::StatusCode::kInvalidArgument) << call.status();
    EXPECT_THAT(call.status().message(), HasSubstr(c.message));
    EXPECT_EQ(ErrorField(call.status()), c.field) << call.status();
    EXPECT_EQ(call.status().message().rfind(c.field, 0), 0u) << call.status();
  }
  // Still serving, constrained or not.
  const auto outs = Generate(Request({.kind = Constraint::Kind::kRegex, .value = "[0-9]{3}"}, 0.0f, 1, 10));
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].finish_reason, FinishReason::kStop);
  EXPECT_TRUE(std::regex_match(outs[0].text, std::regex("[0-9]{3}"))) << outs[0].text;
}

TEST_F(StructuredOutputTest, SpeculativeDraftsGoThroughTheGrammar) {
  // A speculating engine verifies each draft under the grammar's mask at its position, so a
  // constrained request gets the tokens of plain decoding, greedy and seeded-sampled alike.
  const std::string schema = R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},
      "age":{"type":"integer"}},"required":["name","age"]})";
  const std::vector<ServingRequest> requests = {
      Request({.kind = Constraint::Kind::kJsonSchema, .value = schema}, 0.0f, 1, 48),
      Request({.kind = Constraint::Kind::kJsonSchema, .value = schema}, 1.0f, 3, 48, 11),
      Request({.kind = Constraint::Kind::kRegex, .value = "(Once|The) [a-z]{2,8}( [a-z]{1,8}){0,6}\\."}, 0.0f, 1, 40),
      Request({.kind = Constraint::Kind::kGrammar,
               .value = "root ::= word (\", \" word){1,5} \".\"\nword ::= [a-z]{2,6}\n"},
              0.8f, 2, 40, 5),
  };
  std::vector<std::vector<Completion>> plain;
  for (const ServingRequest& r : requests) plain.push_back(Generate(r));
  for (SpeculativeMethod method : {SpeculativeMethod::kNgram, SpeculativeMethod::kMtp}) {
    EngineConfig c;
    c.model_dir = MOESERVE_SOURCE_DIR "/models/default";
    c.num_threads = 1;
    c.max_model_len = 256;
    c.speculative.method = method;
    c.speculative.num_speculative_tokens = 3;
    c.speculative.disable_batch_size = 0;  // speculate in every step
    c.speculative.min_acceptance = 0.0;
    auto engine = Engine::Create(c);
    ASSERT_TRUE(engine.ok()) << engine.status();
    (*engine)->Start();
    Frontend frontend(engine->get(), FrontendOptions{});
    for (size_t i = 0; i < requests.size(); ++i) {
      const std::vector<Completion> spec = Generate(requests[i], &frontend);
      ASSERT_EQ(spec.size(), plain[i].size());
      for (size_t j = 0; j < spec.size(); ++j) {
        EXPECT_EQ(spec[j].finish_reason, plain[i][j].finish_reason) << spec[j].error;
        EXPECT_EQ(spec[j].token_ids, plain[i][j].token_ids)
            << SpeculativeMethodName(method) << " request " << i << " sample " << j << ": \"" << spec[j].text
            << "\" vs \"" << plain[i][j].text << "\"";
      }
    }
    const SpecDecodeMetrics m = (*engine)->GetMetrics().spec_decode;
    EXPECT_GT(m.draft_tokens, 0) << SpeculativeMethodName(method);
    if (method == SpeculativeMethod::kMtp) {
      EXPECT_GT(m.accepted_tokens, 0);
    }
  }
}

TEST(PromptIdsOpenReasoningTest, TheLastReasoningTokenDecides) {
  const structured::ReasoningTokens think{.start = 7, .end = 8};
  EXPECT_TRUE(PromptIdsOpenReasoning(std::vector<int32_t>{1, 2, 7, 3}, think));
  EXPECT_FALSE(PromptIdsOpenReasoning(std::vector<int32_t>{1, 7, 3, 8, 4}, think));
  EXPECT_FALSE(PromptIdsOpenReasoning(std::vector<int32_t>{1, 2, 3}, think));
  EXPECT_FALSE(PromptIdsOpenReasoning(std::vector<int32_t>{7}, structured::ReasoningTokens{}));
}

TEST(StructuredOutputNoTokenizerTest, ConstraintsNeedATokenizer) {
  StructuredOutput structured(nullptr, 100, {2});
  SamplingParams p;
  EXPECT_EQ(*structured.Prepare(p, std::vector<int32_t>{1}, FieldNames{}), nullptr);  // none asked
  p.constraint = {.kind = Constraint::Kind::kRegex, .value = "a"};
  auto got = structured.Prepare(p, std::vector<int32_t>{1}, FieldNames{});
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorField(got.status()), "regex");
}

}  // namespace
}  // namespace moeserve::serving
