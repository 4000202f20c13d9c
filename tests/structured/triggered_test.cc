// Free text with triggered tool calls (TriggeredToolCallsGrammar, Constraint kind kTriggered, and
// the FreeText expression under it): text is free until the trigger's first occurrence, then the
// call must be well formed with schema-valid arguments, then text is free again. Covers triggers
// split across tokens, partial and overlapping triggers, tokens that carry text, the trigger and
// the start of a call at once, two calls, max_triggers, avoided words, EOS placement, masks that
// agree with AcceptToken, free-text states decided without the stack, and bad specs.

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/structured/constraint_compiler.h"
#include "server/structured/tool_calls_grammar.h"
#include "tests/structured/structured_test_util.h"

namespace moeserve::structured {
namespace {

using testing::ByteVocab;
using testing::IsPrefix;
using testing::Matches;
using Json = nlohmann::ordered_json;

const Json kWeather = {{"type", "object"},
                       {"properties", {{"city", {{"type", "string"}}}, {"days", {{"type", "integer"}}}}},
                       {"required", {"city"}},
                       {"additionalProperties", false}};

// Hermes calls (Qwen3): the trigger opens each call; what follows it is one call.
Json HermesSpec(int max_triggers = 0) {
  auto call = [](const std::string& name, const Json& arguments) {
    return Json{{"before", "\n{\"name\": \"" + name + "\", \"arguments\": "},
                {"arguments", arguments},
                {"after", "}\n</tool_call>"}};
  };
  return {{"trigger", "<tool_call>"},
          {"max_triggers", max_triggers},
          {"tool_calls", {{"max_calls", 1}, {"calls", {call("get_weather", kWeather), call("free", nullptr)}}}}};
}

std::string Call(const std::string& name, const std::string& arguments) {
  return "<tool_call>\n{\"name\": \"" + name + "\", \"arguments\": " + arguments + "}\n</tool_call>";
}

std::shared_ptr<const CompiledGrammar> Compile(const Json& spec,
                                               std::shared_ptr<const TokenVocabulary> vocab = ByteVocab()) {
  ConstraintCompiler compiler(std::move(vocab));
  auto grammar = compiler.Compile({.kind = Constraint::Kind::kTriggered, .value = spec.dump()});
  EXPECT_TRUE(grammar.ok()) << grammar.status();
  return grammar.ok() ? *grammar : nullptr;
}

TEST(FreeText, StopsAtTheFirstOccurrenceOfTheTrigger) {
  Grammar g;
  g.AddRule("root");
  g.rules[0].body = Seq({FreeText({"xy"}, "aab"), Literal("!")});
  auto compiled = testing::CompileBytes(g);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  EXPECT_TRUE(Matches(*compiled, "aab!"));
  EXPECT_TRUE(Matches(*compiled, "hello aaab!"));  // the overlap: "a" then "aab"
  EXPECT_TRUE(Matches(*compiled, "aa aab!"));
  EXPECT_TRUE(Matches(*compiled, std::string("x y\xff\0 aab!", 10)));  // any bytes, not only UTF-8
  EXPECT_FALSE(Matches(*compiled, "aab aab!"));                        // the first occurrence ends the text
  EXPECT_FALSE(Matches(*compiled, "axyaab!"));                         // an avoided word
  EXPECT_FALSE(Matches(*compiled, "aa!"));
  // Alone, free text accepts everywhere it has not met a word.
  Grammar free;
  free.AddRule("root");
  free.rules[0].body = FreeText({"ab", "b c"});
  auto f = testing::CompileBytes(free);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(Matches(*f, ""));
  EXPECT_TRUE(Matches(*f, "a b a"));
  EXPECT_FALSE(Matches(*f, "xab"));
  EXPECT_FALSE(Matches(*f, "b cc"));
  EXPECT_EQ(f->get()->pda().num_states(), 4);  // "", "a", "b", "b " (the Aho-Corasick states)
}

TEST(TriggeredToolCalls, FreeTextCallsAndFreeTextAgain) {
  auto g = Compile(HermesSpec());
  ASSERT_NE(g, nullptr);
  const std::string paris = Call("get_weather", "{\"city\":\"Paris\"}");
  EXPECT_TRUE(Matches(g, ""));
  EXPECT_TRUE(Matches(g, "Just text, <tool_ca no call, </tool_call> and <tool>."));
  EXPECT_TRUE(Matches(g, paris));
  EXPECT_TRUE(Matches(g, "Let me look.\n" + paris + "\nIt is sunny."));
  EXPECT_TRUE(Matches(g, "Two: " + paris + "\n" + Call("free", "{\"x\":[1,{}]}") + "\n"));
  EXPECT_TRUE(Matches(g, "<tool_ca<tool_call" + paris.substr(10)));  // a partial trigger, then one
  EXPECT_TRUE(Matches(g, "text ending in a partial trigger <tool_cal"));
  // Once the trigger appears the call must be well formed, of a known tool, schema-valid, closed.
  EXPECT_FALSE(Matches(g, "<tool_call> oops"));
  EXPECT_FALSE(Matches(g, Call("get_weather", "{\"city\":1}")));
  EXPECT_FALSE(Matches(g, Call("get_weather", "{}")));
  EXPECT_FALSE(Matches(g, Call("get_weather", "{\"city\":\"a\",\"x\":1}")));
  EXPECT_FALSE(Matches(g, Call("unknown", "{}")));
  EXPECT_FALSE(Matches(g, Call("free", "[1]")));
  EXPECT_FALSE(Matches(g, "x <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"a\"}}"));
  EXPECT_TRUE(IsPrefix(g, "x <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"a\"}}"));
}

TEST(TriggeredToolCalls, MaxTriggersAndAvoidedWords) {
  auto one = Compile(HermesSpec(1));
  ASSERT_NE(one, nullptr);
  const std::string paris = Call("get_weather", "{\"city\":\"Paris\"}");
  EXPECT_TRUE(Matches(one, "a " + paris + " b"));
  EXPECT_FALSE(IsPrefix(one, paris + " " + paris));
  EXPECT_TRUE(Matches(one, paris + " <tool_cal"));  // only the whole trigger is refused

  // DeepSeek-V3: the block opening triggers; a bare call opening in free text is refused.
  const std::string sep = "<｜tool▁sep｜>";
  const Json spec = {{"trigger", "<｜tool▁calls▁begin｜>"},
                     {"avoid", {"<｜tool▁call▁begin｜>"}},
                     {"max_triggers", 1},
                     {"tool_calls",
                      {{"end", "<｜tool▁calls▁end｜>"},
                       {"separator", "\n"},
                       {"calls",
                        {{{"before", "<｜tool▁call▁begin｜>function" + sep + "get_weather\n```json\n"},
                          {"arguments", kWeather},
                          {"after", "\n```<｜tool▁call▁end｜>"}}}}}}};
  auto ds = Compile(spec);
  ASSERT_NE(ds, nullptr);
  const std::string call =
      "<｜tool▁call▁begin｜>function" + sep + "get_weather\n```json\n{\"city\":\"Oslo\"}\n```<｜tool▁call▁end｜>";
  EXPECT_TRUE(Matches(ds, "Checking. <｜tool▁calls▁begin｜>" + call + "\n" + call + "<｜tool▁calls▁end｜>"));
  EXPECT_TRUE(Matches(ds, "<｜tool▁calls▁begin｜>" + call + "<｜tool▁calls▁end｜> Done."));
  EXPECT_FALSE(IsPrefix(ds, "text " + call));
  EXPECT_FALSE(Matches(ds, "<｜tool▁calls▁begin｜>" + call));
}

// A vocabulary with multi-byte tokens: the trigger whole, split, inside text, and followed by the
// start of a call.
std::shared_ptr<const TokenVocabulary> WordVocab(std::vector<std::string>* words) {
  *words = {"<tool_call>",
            "<tool",
            "_call>",
            "_call",
            ">",
            "Hi <tool_call>",
            "<tool_call>\n{\"name\": \"get",
            "<tool_call>x",
            "\n{\"name\": \"",
            "get_weather",
            "\", \"arguments\": ",
            "{\"city\":\"",
            "Paris",
            "\"}",
            "}\n</tool_call>",
            "Hi",
            " there"};
  std::vector<std::optional<std::string>> bytes(257 + words->size());
  for (int i = 0; i < 256; ++i) bytes[i] = std::string(1, static_cast<char>(i));
  for (size_t i = 0; i < words->size(); ++i) bytes[257 + i] = (*words)[i];
  return *TokenVocabulary::Create(std::move(bytes), {.stop_ids = {256}});
}

bool Bit(const std::vector<uint32_t>& mask, int32_t id) { return (mask[id >> 5] >> (id & 31)) & 1u; }

// Feeds `ids`; at every step checks that the mask agrees with AcceptToken on every token.
void FeedChecked(const std::shared_ptr<const CompiledGrammar>& g, const std::vector<int32_t>& ids) {
  GrammarMatcher m(g, 1);
  std::vector<uint32_t> mask(g->vocab().mask_words());
  for (size_t step = 0; step <= ids.size(); ++step) {
    m.FillNextTokenBitmask(mask.data());
    for (int32_t id = 0; id < g->vocab().mask_size(); ++id) {
      const bool ok = m.AcceptToken(id);
      if (ok) m.Rollback(1);
      ASSERT_EQ(ok, Bit(mask, id)) << "step " << step << " token " << id;
    }
    if (step < ids.size()) {
      ASSERT_TRUE(m.AcceptToken(ids[step])) << "step " << step;
    }
  }
}

TEST(TriggeredToolCalls, TriggersAcrossAndInsideTokens) {
  std::vector<std::string> words;
  auto vocab = WordVocab(&words);
  auto g = Compile(HermesSpec(), vocab);
  ASSERT_NE(g, nullptr);
  auto id = [&](const std::string& w) {
    for (size_t i = 0; i < words.size(); ++i) {
      if (words[i] == w) return static_cast<int32_t>(257 + i);
    }
    ADD_FAILURE() << w;
    return 0;
  };
  const std::vector<int32_t> tail = {id("\n{\"name\": \""), id("get_weather"), id("\", \"arguments\": "),
                                     id("{\"city\":\""),    id("Paris"),       id("\"}"),
                                     id("}\n</tool_call>"), id("Hi")};
  auto with = [&](std::vector<int32_t> head) {
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  FeedChecked(g, with({id("Hi"), id("<tool_call>")}));
  FeedChecked(g, with({id("<tool"), id("_call"), id(">")}));  // split across three tokens
  FeedChecked(g, with({id("<tool"), id("_call>")}));
  FeedChecked(g, with({id("Hi <tool_call>")}));  // text and the trigger in one token
  FeedChecked(g, {id("<tool_call>\n{\"name\": \"get"), '_', 'w', 'e', 'a', 't', 'h', 'e', 'r'});

  GrammarMatcher m(g);
  std::vector<uint32_t> mask(vocab->mask_words());
  m.FillNextTokenBitmask(mask.data());
  EXPECT_TRUE(Bit(mask, id("Hi")));
  EXPECT_TRUE(Bit(mask, id("<tool_call>")));
  EXPECT_TRUE(Bit(mask, id("<tool_call>\n{\"name\": \"get")));
  EXPECT_FALSE(Bit(mask, id("<tool_call>x")));  // the trigger, then no call
  EXPECT_TRUE(Bit(mask, id("\"}")));
  EXPECT_TRUE(Bit(mask, 256));  // EOS: free text may end anywhere
  ASSERT_TRUE(m.AcceptToken(id("<tool_call>")));
  m.FillNextTokenBitmask(mask.data());
  EXPECT_FALSE(Bit(mask, 256));  // not inside a call
  EXPECT_FALSE(Bit(mask, id("Hi")));
  EXPECT_TRUE(Bit(mask, id("\n{\"name\": \"")));
}

TEST(TriggeredToolCalls, FreeTextStatesNeedNoStack) {
  std::vector<std::string> words;
  auto g = Compile(HermesSpec(), WordVocab(&words));
  ASSERT_NE(g, nullptr);
  const Pda& pda = g->pda();
  int32_t root_states = 0;
  for (int32_t s = 0; s < pda.num_states(); ++s) {
    if (pda.rule_of(s) != pda.root_rule() || !pda.scans(s)) continue;
    ++root_states;
    EXPECT_TRUE(g->masks().Lookup(s, -1).uncertain.empty()) << "state " << s;
  }
  EXPECT_GE(root_states, 11);  // at least the trigger's 11 free-text states
}

TEST(TriggeredToolCalls, BadSpecsNameThePart) {
  auto error = [](const Json& spec) {
    absl::StatusOr<Grammar> g = TriggeredToolCallsGrammar(spec.dump());
    EXPECT_FALSE(g.ok()) << spec;
    return g.ok() ? std::string() : std::string(g.status().message());
  };
  auto starts = [](const std::string& message, const std::string& prefix) {
    EXPECT_EQ(message.rfind(prefix, 0), 0u) << message;
  };
  Json spec = HermesSpec();
  spec.erase("trigger");
  starts(error(spec), "triggered: trigger must be a non-empty string");
  spec = HermesSpec();
  spec["avoid"] = {""};
  starts(error(spec), "triggered: avoid must be an array of non-empty strings");
  spec = HermesSpec();
  spec["trigger"] = std::string(5000, 'x');
  starts(error(spec), "triggered: trigger and avoid are 5000 bytes; the limit is 4096");
  spec = HermesSpec();
  spec["max_triggers"] = -2;
  starts(error(spec), "triggered: max_triggers");
  spec = HermesSpec();
  spec["when"] = 1;
  starts(error(spec), "triggered: unknown field 'when'");
  spec = HermesSpec();
  spec["tool_calls"]["calls"][0]["arguments"] = {{"type", "array"}, {"uniqueItems", true}};
  starts(error(spec), "triggered: tool_calls: calls[0].arguments: unsupported keyword 'uniqueItems'");
  EXPECT_EQ(TriggeredToolCallsGrammar("[").status().message().rfind("triggered: invalid JSON", 0), 0u);
}

}  // namespace
}  // namespace moeserve::structured
