// The bounds of chat-template evaluation: every step is counted (printed or not), a render stops
// at its time limit, at the caller's deadline and on cancellation, deep nesting fails fast, and
// values that share structure cannot blow up time, memory or the stack. Each case reproduces an
// input that once ran for minutes, exhausted memory or crashed; the watchdogs turn a regression
// into a fast failure with a message.

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/tokenizer/chat_template.h"
#include "server/tokenizer/template/interpreter.h"
#include "server/tokenizer/template/parser.h"
#include "tests/test_util.h"

namespace moeserve {
namespace {

using Json = nlohmann::ordered_json;
using ::testing::HasSubstr;
using std::chrono_literals::operator""s;

const Json kOneMessage = Json::parse(R"([{"role": "user", "content": "hi"}])");

absl::Status RenderStatus(const std::string& source, const ChatRenderControl& control = {},
                          const Json& messages = kOneMessage) {
  auto t = ChatTemplate::Parse(source);
  if (!t.ok()) return t.status();
  return t->Render(messages, false, Json::object(), control).status();
}

// Renders through the interpreter with explicit limits.
absl::Status RenderWithLimits(const std::string& source, const jinja::RenderLimits& limits) {
  auto nodes = jinja::ParseTemplate(source);
  if (!nodes.ok()) return nodes.status();
  return jinja::Render(*nodes, jinja::Dict(), limits).status();
}

constexpr char kSilentLoops[] = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";

TEST(ChatTemplateLimitsTest, LoopsThatPrintNothingSpendTheBudget) {
  testing::Watchdog watchdog(60s, "rendering 10^10 empty loop iterations");
  const absl::Status s = RenderStatus(kSilentLoops);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("exceeded its budget of 10000000 steps"));
  EXPECT_THAT(s.message(), HasSubstr("chat template line 1, column "));
}

TEST(ChatTemplateLimitsTest, RenderStopsAtItsTimeLimit) {
  testing::Watchdog watchdog(60s, "a render with a 100 ms time limit");
  jinja::RenderLimits limits;
  limits.max_steps = int64_t{1} << 60;
  limits.max_time = absl::Milliseconds(100);
  const absl::Status s = RenderWithLimits(kSilentLoops, limits);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("exceeded its time limit of 100ms"));
}

TEST(ChatTemplateLimitsTest, CallersDeadlineStopsTheRender) {
  testing::Watchdog watchdog(60s, "a render with a 50 ms deadline");
  ChatRenderControl control;
  control.deadline = absl::Now() + absl::Milliseconds(50);
  absl::Status s = RenderStatus(kSilentLoops, control);
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("deadline expired while rendering the chat template"));

  control.deadline = absl::Now() - absl::Seconds(1);
  s = RenderStatus("{{ 'short' }}", control);
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
}

TEST(ChatTemplateLimitsTest, CancellationStopsTheRenderThroughApply) {
  testing::Watchdog watchdog(60s, "a render cancelled after 50 ms");
  auto t = TokenizerChatTemplate::FromTokenizerConfig(Json{{"chat_template", kSilentLoops}}.dump());
  ASSERT_TRUE(t.ok()) << t.status();
  std::atomic<bool> cancelled = false;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancelled = true;
  });
  ChatRequest request;
  request.messages = kOneMessage;
  request.control.cancelled = [&] { return cancelled.load(); };
  const absl::Status s = t->Apply(request).status();
  canceller.join();
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("cancelled while rendering the chat template"));
}

TEST(ChatTemplateLimitsTest, DeeplyNestedSourceIsRejectedFast) {
  // Each once took 10-50 s: the lexer counted every token's column from the line start.
  testing::Watchdog watchdog(10s, "parsing 100k nested brackets");
  const int n = 100000;
  std::string nots = "{{ ";
  std::string ifs;
  for (int i = 0; i < n; ++i) {
    nots += "not ";
    ifs += "{% if true %}";
  }
  for (const std::string& source : {absl::StrCat("{{ ", std::string(n, '('), "1", std::string(n, ')'), " }}"),
                                    absl::StrCat("{{ ", std::string(n, '['), std::string(n, ']'), " }}"),
                                    absl::StrCat("{{ ", std::string(n, '-'), "1 }}"), nots + "1 }}", ifs}) {
    const absl::Status s = ChatTemplate::Parse(source).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr("nested too deeply"));
  }
}

TEST(ChatTemplateLimitsTest, SharedValuesCannotMultiplyTheWork) {
  testing::Watchdog watchdog(60s, "printing and comparing values of 10^9 shared items");
  // 10^9 items reachable through 3,000 list slots.
  const std::string dag =
      "{% set a = [1] * 1000 %}{% set b = [a] * 1000 %}{% set c = [b] * 1000 %}"
      "{% set a2 = [1] * 1000 %}{% set b2 = [a2] * 1000 %}{% set c2 = [b2] * 1000 %}";
  absl::Status s = RenderStatus(dag + "{{ c }}");
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("string longer than the limit"));
  s = RenderStatus(dag + "{{ c | tojson }}");
  EXPECT_THAT(s.message(), HasSubstr("tojson: output longer than"));
  s = RenderStatus(dag + "{{ c == c2 }}");
  EXPECT_THAT(s.message(), HasSubstr("exceeded its budget"));
  s = RenderStatus(dag + "{{ c2 in [c] }}{{ [c, c2] | unique | length }}");
  EXPECT_THAT(s.message(), HasSubstr("exceeded its budget"));
  s = RenderStatus(dag + "{{ c | join(',') }}");
  EXPECT_THAT(s.message(), HasSubstr("too large"));
  s = RenderStatus("{% set s = 'x' * 10000 %}{{ s.replace('', 'y' * 100000) }}");
  EXPECT_THAT(s.message(), HasSubstr("replace(): result too large"));
  s = RenderStatus(
      "{% set s = 'x ' * 1000000 %}{% for i in range(1000) %}{{ s.split() | length }}"
      "{% endfor %}");
  EXPECT_THAT(s.message(), HasSubstr("exceeded its budget"));
}

TEST(ChatTemplateLimitsTest, DeeplyNestedValuesAreRefusedNotCrashing) {
  testing::Watchdog watchdog(60s, "building a list nested 100k deep");
  // Printing or freeing such a value recursed once per level and overflowed the stack.
  absl::Status s = RenderStatus(
      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
      "{% endfor %}{{ ns.x }}");
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("value nests lists and dicts more than 256 deep"));
  // A chain of namespaces (opaque to printing) is freed without recursion.
  s = RenderStatus(
      "{% set ns = namespace(x=none) %}{% for i in range(100000) %}"
      "{% set ns.x = namespace(next=ns.x) %}{% endfor %}ok");
  EXPECT_TRUE(s.ok()) << s;
  // A namespace that holds itself is a cycle; the render must not leak it (LeakSanitizer checks).
  s = RenderStatus("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns.self.self is defined }}");
  EXPECT_TRUE(s.ok()) << s;

  // The same from the caller's side: messages nested 100k deep.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  Json messages = Json::array();
  messages.push_back(Json{{"role", "user"}, {"content", Json::parse(deep)}});
  s = RenderStatus("{{ messages[0].content }}", {}, messages);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("nests lists and objects too deeply"));
}

TEST(ChatTemplateLimitsTest, LargeObjectsInMessagesAreIndexed) {
  // Building the template's dict of a 200k-key object searched every key on each insert.
  testing::Watchdog watchdog(30s, "rendering a message with a 200k-key object");
  // Appended straight to ordered_json's underlying vector: its own insert searches linearly too.
  Json args = Json::object();
  auto& entries = static_cast<Json::object_t::Container&>(args.get_ref<Json::object_t&>());
  for (int i = 0; i < 200000; ++i) entries.emplace_back(absl::StrCat("k", i), i);
  Json messages = Json::array();
  messages.push_back(Json{{"role", "user"}, {"content", "x"}, {"args", std::move(args)}});
  auto t = ChatTemplate::Parse("{{ messages[0].args.k199999 }} {{ messages[0].args['k7'] }}");
  ASSERT_TRUE(t.ok()) << t.status();
  auto out = t->Render(messages, false, Json::object());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "199999 7");
}

TEST(ChatTemplateLimitsTest, RealTemplatesStayFarFromTheBudget) {
  // A 1,000-message conversation in each fixture template (features.jinja is the costliest)
  // renders within a tenth of the default budget.
  Json messages = Json::array();
  for (int i = 0; i < 1000; ++i) {
    messages.push_back(
        Json{{"role", i % 2 ? "assistant" : "user"}, {"content", absl::StrCat(std::string(300, 'a'), " turn ", i)}});
  }
  jinja::Dict context;
  context.Set("messages", *jinja::Value::FromJson(messages, 64));
  context.Set("add_generation_prompt", jinja::Value(true));
  context.Set("bos_token", jinja::Value("<s>"));
  context.Set("eos_token", jinja::Value("</s>"));
  jinja::RenderLimits limits;
  limits.max_steps = jinja::RenderLimits().max_steps / 10;
  for (const char* name : {"deepseek_r1.jinja", "features.jinja", "llama3.jinja"}) {
    std::ifstream in(testing::FixturesDir() / "tokenizer" / "chat_templates" / name);
    const std::string source((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_FALSE(source.empty()) << name;
    auto nodes = jinja::ParseTemplate(source);
    ASSERT_TRUE(nodes.ok()) << nodes.status();
    auto out = jinja::Render(*nodes, context, limits);
    EXPECT_TRUE(out.ok()) << name << ": " << out.status();
  }
}

}  // namespace
}  // namespace moeserve
