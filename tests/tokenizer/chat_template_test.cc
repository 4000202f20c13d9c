// Unit tests of the chat-template interpreter: Jinja2 semantics, whitespace control, scoping,
// and the errors at load and at render.
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/tokenizer/chat_template.h"

namespace moeserve {
namespace {

using Json = nlohmann::ordered_json;
using ::testing::HasSubstr;

std::string RenderOk(const std::string& source, const Json& extra = Json::object(),
                     const Json& messages = Json::array()) {
  auto t = ChatTemplate::Parse(source);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "<parse error>";
  auto out = t->Render(messages, /*add_generation_prompt=*/false, extra);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "<render error>";
}

absl::Status ParseError(const std::string& source) {
  auto t = ChatTemplate::Parse(source);
  return t.ok() ? absl::OkStatus() : t.status();
}

absl::Status RenderError(const std::string& source, const Json& extra = Json::object()) {
  auto t = ChatTemplate::Parse(source);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return t.status();
  auto out = t->Render(Json::array(), false, extra);
  return out.ok() ? absl::OkStatus() : out.status();
}

TEST(ChatTemplateTest, ExpressionsFollowPythonSemantics) {
  EXPECT_EQ(RenderOk("{{ 1 + 2 * 3 }} {{ 7 // -2 }} {{ -7 % 3 }} {{ 1 / 2 }} {{ 2 ** 3 }}"), "7 -4 2 0.5 8");
  EXPECT_EQ(RenderOk("{{ 'ab' ~ 1 ~ none }} {{ 'x' + 'y' }} {{ [1] + [2] }} {{ 'é' * 2 }}"), "ab1None xy [1, 2] éé");
  EXPECT_EQ(RenderOk("{{ 'héllo'[1] }} {{ 'héllo'[::-1] }} {{ [1,2,3][-2:] }} {{ 'héllo' | length }}"),
            "é olléh [2, 3] 5");
  EXPECT_EQ(RenderOk("{{ 0 or 'a' }} {{ 1 and 'b' }} {{ not none }} {{ 'x' if false }}|"), "a b True |");
  EXPECT_EQ(RenderOk("{{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 3.0 }} {{ -0.5 }}"),
            "1e+16 1000000000000000.0 0.0001 1e-05 3.0 -0.5");
}

TEST(ChatTemplateTest, StringMethodsAndFilters) {
  EXPECT_EQ(RenderOk("{{ ' a b '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.rsplit(' ', 1) }}"),
            "['a', 'b'] ['a', 'b', '', 'c'] ['a b', 'c']");
  // After maxsplit parts Python keeps the rest's far end as it is.
  EXPECT_EQ(RenderOk("{{ 'a b  c  '.split(none, 1) }} {{ '  a b  c  '.rsplit(none, 1) }} "
                     "{{ ' é\u3000b '.split() }}"),
            "['a', 'b  c  '] ['  a b', 'c'] ['é', 'b']");
  EXPECT_EQ(RenderOk("{{ 'xxhixx'.strip('x') }}|{{ '\n a \n'.lstrip() }}|{{ 'ab'.replace('', '-') }}"),
            "hi|a \n|-a-b-");
  EXPECT_EQ(RenderOk("{{ {'b': 1, 'a': 'é'} | tojson }} {{ [1, {'k': none}] | tojson(indent=1) }}"),
            "{\"b\": 1, \"a\": \"é\"} [\n 1,\n {\n  \"k\": null\n }\n]");
  EXPECT_EQ(RenderOk("{{ x | default('d') }} {{ [3, 1, 3] | unique | list }} {{ 'AbC' | lower }}"), "d [3, 1] abc");
}

TEST(ChatTemplateTest, WhitespaceControlMatchesTransformersEnvironment) {
  // trim_blocks eats the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(RenderOk("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(RenderOk("a  {{- ' b ' -}}  c"), "a b c");
  EXPECT_EQ(RenderOk("x {#- comment -#} y"), "xy");
  EXPECT_EQ(RenderOk("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
  EXPECT_EQ(RenderOk("last newline dropped\n"), "last newline dropped");
}

TEST(ChatTemplateTest, SetInsideLoopDoesNotLeakButNamespaceDoes) {
  EXPECT_EQ(RenderOk("{% set x = 0 %}{% set ns = namespace(x=0) %}"
                     "{% for i in range(3) %}{% set x = x + i %}{% set ns.x = ns.x + i %}{% endfor %}"
                     "{{ x }} {{ ns.x }}"),
            "0 3");
  EXPECT_EQ(RenderOk("{% for a, b in {'k': 1, 'j': 2}.items() %}{{ loop.index }}{{ a }}{{ b }}"
                     "{% if not loop.last %},{% endif %}{% endfor %}"),
            "1k1,2j2");
  EXPECT_EQ(RenderOk("{% macro m(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}"), "[1B][23]");
}

TEST(ChatTemplateTest, UnsupportedFeaturesFailAtLoadWithPosition) {
  absl::Status s = ParseError("ok\n{{ x | frobnicate }}");
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("line 2, column 8"));
  EXPECT_THAT(s.message(), HasSubstr("unsupported filter 'frobnicate'"));
  EXPECT_THAT(ParseError("{% include 'x.jinja' %}").message(), HasSubstr("unsupported statement"));
  EXPECT_THAT(ParseError("{{ x is frob }}").message(), HasSubstr("unsupported test 'frob'"));
  EXPECT_THAT(ParseError("{{ x.frob() }}").message(), HasSubstr("unsupported method 'frob()'"));
  EXPECT_THAT(ParseError("{{ lipsum() }}").message(), HasSubstr("unsupported function 'lipsum'"));
  EXPECT_THAT(ParseError("{% if x %}").message(), HasSubstr("expected '{% elif %}'"));
  EXPECT_THAT(ParseError("{{ 'abc }}").message(), HasSubstr("unterminated string"));
  EXPECT_THAT(ParseError("{% break %}").message(), HasSubstr("outside of a for loop"));
}

TEST(ChatTemplateTest, RenderErrorsCarryPosition) {
  absl::Status s = RenderError("\n  {{ raise_exception('bad role') }}");
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("line 2, column 6"));
  EXPECT_THAT(s.message(), HasSubstr("bad role"));
  EXPECT_THAT(RenderError("{{ m.content }}").message(), HasSubstr("'m' is undefined"));
  EXPECT_THAT(RenderError("{{ 'a' + 1 }}").message(), HasSubstr("can only concatenate str"));
  EXPECT_THAT(RenderError("{% for i in range(1000000) %}{% endfor %}").message(), HasSubstr("range too big"));
}

TEST(ChatTemplateTest, TokenizerChatTemplateDropsNullKeysAndAliasesReasoning) {
  const std::string config = R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>",
    "chat_template": "{{ bos_token }}{% for m in messages %}{{ m | tojson }}{% endfor %}{{ eos_token }}"})";
  auto t = TokenizerChatTemplate::FromTokenizerConfig(config);
  ASSERT_TRUE(t.ok()) << t.status();
  ChatRequest request;
  request.messages = Json::parse(R"([{"role": "assistant", "content": null, "reasoning": "r"}])");
  auto out = t->Apply(request);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, R"(<s>{"thinking": "r", "role": "assistant", "reasoning": "r", "reasoning_content": "r"}</s>)");
  request.messages = Json::array();
  EXPECT_FALSE(t->Apply(request).ok());
}

}  // namespace
}  // namespace moeserve
