// Chat end to end on a Qwen3 model with the real Qwen3 tokenizer and chat template
// (../shared/data/tokenizers/qwen3): messages -> template (enable_thinking on and off) -> engine ->
// Call output -> the Qwen3 reasoning parser, whole and streamed delta by delta.
//
// The model is a Qwen3ForCausalLM with the tokenizer's vocabulary, random weights (every block
// runs: q/k norms, GQA attention, MLP), except that a few token embeddings and lm_head rows are
// set so that the greedy next token is a function of the last token (a bigram script). The
// script follows "<|im_start|>assistant\n" with "<think>Two and two.</think>\n\n4<|im_end|>" and
// "\n\n" (the end of the enable_thinking=false generation prompt) with "4<|im_end|>": what the
// parser gets depends on the exact ids the template and tokenizer produce, and the engine must stop
// at the template's end-of-turn token.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/common/numeric.h"
#include "server/engine/engine.h"
#include "server/model/random_model.h"
#include "server/model/safetensors.h"
#include "server/serving/frontend.h"
#include "server/serving/parsers/chat_output_parser.h"
#include "server/serving/parsers/parser_selection.h"
#include "server/tokenizer/chat_template.h"
#include "tests/test_util.h"

namespace moeserve::serving {
namespace {

using Json = nlohmann::ordered_json;
using ::testing::ElementsAreArray;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

// Qwen3 token ids (tokenizers/qwen3/tokenizer.json).
constexpr int32_t kNewline = 198;      // "\n"
constexpr int32_t kNewlines = 271;     // "\n\n"
constexpr int32_t kThink = 151667;     // <think> (an added token, not special)
constexpr int32_t kEndThink = 151668;  // </think>
constexpr int32_t kImEnd = 151645;     // <|im_end|>: EOS
constexpr int32_t kTwo = 11613;        // "Two"
constexpr int32_t kAnd = 323;          // " and"
constexpr int32_t kLowerTwo = 1378;    // " two"
constexpr int32_t kPeriod = 13;        // "."
constexpr int32_t kFour = 19;          // "4"

constexpr int64_t kHidden = 16;
constexpr int64_t kVocab = 151936;  // Qwen3's vocab_size: the tokenizer's ids and padding

// Each script token's successor. Sources and successors are all distinct.
const std::vector<std::pair<int32_t, int32_t>>& Script() {
  static const auto* script = new std::vector<std::pair<int32_t, int32_t>>{
      {kNewline, kThink},   {kThink, kTwo},         {kTwo, kAnd},       {kAnd, kLowerTwo}, {kLowerTwo, kPeriod},
      {kPeriod, kEndThink}, {kEndThink, kNewlines}, {kNewlines, kFour}, {kFour, kImEnd}};
  return *script;
}

std::string Qwen3Config() {
  Json c;
  c["architectures"] = {"Qwen3ForCausalLM"};
  c["model_type"] = "qwen3";
  c["vocab_size"] = kVocab;
  c["hidden_size"] = kHidden;
  c["intermediate_size"] = 48;
  c["num_hidden_layers"] = 2;
  c["num_attention_heads"] = 4;
  c["num_key_value_heads"] = 2;
  c["head_dim"] = 8;
  c["hidden_act"] = "silu";
  c["max_position_embeddings"] = 512;
  c["rms_norm_eps"] = 1e-6;
  c["rope_theta"] = 1000000.0;
  c["attention_bias"] = false;
  c["tie_word_embeddings"] = false;
  c["bos_token_id"] = 151643;
  c["eos_token_id"] = kImEnd;
  return c.dump();
}

// Sets row `row` of a BF16 [kVocab, kHidden] tensor to `value` times the unit vector e_i.
void SetRow(HostTensor& t, int32_t row, size_t i, float value) {
  uint16_t* r = reinterpret_cast<uint16_t*>(t.data.data()) + static_cast<int64_t>(row) * kHidden;
  std::fill(r, r + kHidden, FloatToBf16(0.0f));
  r[i] = FloatToBf16(value);
}

// Writes the scripted model into `dir` (random Qwen3 weights, then the script's rows).
void WriteScriptedModel(const std::string& dir) {
  ASSERT_TRUE(WriteRandomModel(Qwen3Config(), dir, {.seed = 3, .dtype = DType::kBF16}).ok());
  const std::string path = dir + "/model.safetensors";
  std::vector<HostTensor> tensors;
  {
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status();
    for (const TensorInfo& info : (*file)->tensors()) {
      absl::Span<const uint8_t> data = (*file)->Data(info);
      tensors.push_back({info.name, *info.dtype(), info.shape, {data.begin(), data.end()}});
    }
  }
  HostTensor* embed = nullptr;
  HostTensor* head = nullptr;
  for (HostTensor& t : tensors) {
    if (t.name == "model.embed_tokens.weight") embed = &t;
    if (t.name == "lm_head.weight") head = &t;
  }
  ASSERT_TRUE(embed != nullptr && head != nullptr);
  ASSERT_EQ(embed->dtype, DType::kBF16);
  ASSERT_EQ(head->dtype, DType::kBF16);
  // Script token i is the unit vector e_i, far larger than the random rows (std 0.02) and than what
  // attention and the MLP add; the successor's lm_head row reads e_i with a wide margin.
  for (size_t i = 0; i < Script().size(); ++i) {
    const auto [token, next] = Script()[i];
    SetRow(*embed, token, i, 1.0f);
    SetRow(*head, next, i, 10.0f);
  }
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
}

class Qwen3ChatTest : public ::testing::Test {
 protected:
  static std::filesystem::path TokenizerDir() { return moeserve::testing::TestDataDir() / "tokenizers" / "qwen3"; }

  static void SetUpTestSuite() {
    const std::filesystem::path tokenizer_dir = TokenizerDir();
    if (!std::filesystem::exists(tokenizer_dir / "tokenizer_config.json")) return;
    model_dir_ = new std::string(moeserve::testing::MakeTempDir("qwen3_chat").string());
    WriteScriptedModel(*model_dir_);
    EngineConfig c;
    c.model_dir = *model_dir_;
    c.tokenizer_dir = tokenizer_dir.string();
    c.num_threads = 1;
    c.max_model_len = 256;
    c.kv_cache_memory_bytes = 8 << 20;
    auto engine = Engine::Create(c);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = engine->release();
    engine_->Start();
    frontend_ = new Frontend(engine_, {});
  }

  static void TearDownTestSuite() {
    delete frontend_;
    delete engine_;
    delete model_dir_;
    frontend_ = nullptr;
    engine_ = nullptr;
    model_dir_ = nullptr;
  }

  void SetUp() override {
    MOESERVE_REQUIRE_TEST_DATA("tokenizers/qwen3/tokenizer_config.json");
    ASSERT_NE(frontend_, nullptr);
  }

  // The chat parser options the server would pick from this template.
  static parsers::ChatParserOptions ParserOptions() {
    absl::StatusOr<TokenizerChatTemplate> chat = TokenizerChatTemplate::FromDirectory(TokenizerDir().string());
    EXPECT_TRUE(chat.ok()) << chat.status();
    if (!chat.ok()) return {};
    absl::StatusOr<parsers::ReasoningFormat> reasoning = parsers::ResolveReasoningFormat("auto", chat->source());
    EXPECT_TRUE(reasoning.ok()) << reasoning.status();
    return {.reasoning = reasoning.value_or(parsers::ReasoningFormat::kNone)};
  }

  struct Turn {
    std::string prompt_text;  // the rendered conversation
    std::vector<int32_t> prompt_ids;
    std::vector<int32_t> ids;  // generated
    Output last;               // the request's last delta
    parsers::ParsedChatOutput whole;
    parsers::ParsedChatOutput streamed;  // each delta fed to a ChatOutputParser as it came
  };

  static Turn Chat(const Json& messages, const Json& kwargs) {
    Turn turn;
    ServingRequest r;
    r.prompt = ChatPrompt{.messages = messages, .template_kwargs = kwargs};
    r.sampling.temperature = 0.0f;
    r.sampling.max_tokens = 32;
    absl::StatusOr<std::string> rendered = frontend_->prompts().Render(std::get<ChatPrompt>(r.prompt), r.names);
    EXPECT_TRUE(rendered.ok()) << rendered.status();
    turn.prompt_text = rendered.value_or("");
    auto call = frontend_->Submit(std::move(r));
    EXPECT_TRUE(call.ok()) << call.status();
    if (!call.ok()) return turn;
    turn.prompt_ids = (*call)->prompt_token_ids();
    const parsers::ChatParserOptions options = ParserOptions();
    parsers::ChatOutputParser parser(options, turn.prompt_text);
    std::string text;
    auto gather = [&turn](const parsers::ChatDelta& d) {
      turn.streamed.reasoning += d.reasoning;
      turn.streamed.content += d.content;
    };
    while (std::optional<Output> out = (*call)->Next(absl::Seconds(60))) {
      text += out->text;
      turn.ids.insert(turn.ids.end(), out->token_ids.begin(), out->token_ids.end());
      gather(parser.Feed(out->text));
      turn.last = *out;
      if (out->request_finished) break;
    }
    gather(parser.Finish());
    turn.streamed.has_reasoning = parser.saw_reasoning();
    turn.whole = parsers::ParseChatOutput(options, turn.prompt_text, text);
    return turn;
  }

  static std::string* model_dir_;
  static Engine* engine_;
  static Frontend* frontend_;
};

std::string* Qwen3ChatTest::model_dir_ = nullptr;
Engine* Qwen3ChatTest::engine_ = nullptr;
Frontend* Qwen3ChatTest::frontend_ = nullptr;

const Json& Question() {
  static const auto* messages = new Json(Json::parse(R"([{"role": "user", "content": "2+2?"}])"));
  return *messages;
}

TEST_F(Qwen3ChatTest, ThinkingOutputSplitsIntoReasoningAndContent) {
  const Turn turn = Chat(Question(), Json::object());
  EXPECT_EQ(turn.prompt_text, "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  ASSERT_FALSE(turn.prompt_ids.empty());
  EXPECT_EQ(turn.prompt_ids.back(), kNewline);
  // The script, up to and including the end-of-turn token that stopped the engine.
  EXPECT_THAT(turn.ids,
              ElementsAreArray({kThink, kTwo, kAnd, kLowerTwo, kPeriod, kEndThink, kNewlines, kFour, kImEnd}));
  EXPECT_EQ(turn.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(turn.last.stop_token_id, kImEnd);
  EXPECT_EQ(turn.last.usage.completion_tokens, 9);
  EXPECT_TRUE(turn.whole.has_reasoning);
  EXPECT_EQ(turn.whole.reasoning, "Two and two.");
  EXPECT_EQ(turn.whole.content, "4");
  EXPECT_TRUE(turn.streamed.has_reasoning);
  EXPECT_EQ(turn.streamed.reasoning, turn.whole.reasoning);
  EXPECT_EQ(turn.streamed.content, turn.whole.content);
}

TEST_F(Qwen3ChatTest, EnableThinkingFalseClosesTheBlockInThePrompt) {
  const Turn turn = Chat(Question(), Json::parse(R"({"enable_thinking": false})"));
  EXPECT_THAT(turn.prompt_text, EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  ASSERT_GE(turn.prompt_ids.size(), 4u);
  EXPECT_THAT(std::vector<int32_t>(turn.prompt_ids.end() - 4, turn.prompt_ids.end()),
              ElementsAreArray({kThink, kNewlines, kEndThink, kNewlines}));
  EXPECT_THAT(turn.ids, ElementsAreArray({kFour, kImEnd}));
  EXPECT_EQ(turn.last.finish_reason, FinishReason::kStop);
  EXPECT_FALSE(turn.whole.has_reasoning);
  EXPECT_EQ(turn.whole.reasoning, "");
  EXPECT_EQ(turn.whole.content, "4");
  EXPECT_FALSE(turn.streamed.has_reasoning);
  EXPECT_EQ(turn.streamed.content, "4");
}

// The parsed first turn goes back as an assistant message with reasoning_content: the template
// drops the reasoning of turns before the last question, and the model thinks afresh.
TEST_F(Qwen3ChatTest, SecondTurnDropsThePreviousReasoning) {
  const Turn first = Chat(Question(), Json::object());
  Json messages = Question();
  messages.push_back(
      {{"role", "assistant"}, {"content", first.whole.content}, {"reasoning_content", first.whole.reasoning}});
  messages.push_back({{"role", "user"}, {"content", "And 2+3?"}});
  const Turn second = Chat(messages, Json::object());
  EXPECT_EQ(second.prompt_text,
            "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
            "<|im_start|>user\nAnd 2+3?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_THAT(second.prompt_text, Not(HasSubstr("Two and two")));
  EXPECT_EQ(second.whole.reasoning, "Two and two.");
  EXPECT_EQ(second.whole.content, "4");
}

}  // namespace
}  // namespace moeserve::serving
