// The OpenAI layer's pure parts: request bodies -> serving requests (every parameter read or
// refused by name), errors in OpenAI's shape with their statuses, the logprob formats, SSE and
// HTTP framing.

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/api/http/http_wire.h"
#include "server/api/openai/generation_request.h"
#include "server/api/openai/openai_errors.h"
#include "server/api/openai/openai_format.h"
#include "server/api/openai/response_format.h"
#include "server/api/openai/tool_choice.h"
#include "server/serving/errors.h"
#include "server/structured/constraint_compiler.h"

namespace moeserve::api::openai {
namespace {

using ::testing::HasSubstr;

Json Body(const char* text) { return Json::parse(text); }

TEST(CompletionRequestTest, EveryPromptForm) {
  auto one = ParseCompletionRequest(Body(R"({"prompt": "hi", "max_tokens": 5})"), "m");
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->prompts.size(), 1u);
  EXPECT_EQ(std::get<serving::TextPrompt>(one->prompts[0].prompt).text, "hi");
  EXPECT_EQ(one->prompts[0].sampling.max_tokens, 5);
  EXPECT_EQ(one->prompts[0].names.prompt, "prompt");
  auto ids = ParseCompletionRequest(Body(R"({"prompt": [1, 2, 3]})"), "m");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(std::get<serving::TokenPrompt>(ids->prompts[0].prompt).ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ids->prompts[0].sampling.max_tokens, 16);  // OpenAI's default for completions
  auto batch = ParseCompletionRequest(Body(R"({"prompt": ["a", [4, 5]], "n": 2})"), "m");
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->prompts.size(), 2u);
  EXPECT_EQ(batch->prompts[1].names.prompt, "prompt[1]");
  EXPECT_EQ(batch->prompts[1].sampling.n, 2);
}

TEST(CompletionRequestTest, ParametersAreReadOrRefusedByName) {
  auto r = ParseCompletionRequest(Body(R"({"prompt": "x", "temperature": 0.5, "top_p": 0.9, "top_k": 4, "min_p": 0.1,
               "seed": 7, "stop": "END", "stop_token_ids": [3], "presence_penalty": 0.2,
               "frequency_penalty": 0.3, "repetition_penalty": 1.1, "logit_bias": {"5": -2},
               "ignore_eos": true, "min_tokens": 2, "priority": -1, "user": "u", "logprobs": 2,
               "echo": true, "stream": true, "stream_options": {"include_usage": true},
               "best_of": 1, "skip_special_tokens": false, "model": "m", "n": null})"),
                                  "m");
  ASSERT_TRUE(r.ok()) << r.status();
  const serving::ServingRequest& s = r->prompts[0];
  EXPECT_EQ(s.sampling.temperature, 0.5f);
  EXPECT_EQ(s.sampling.top_k, 4);
  EXPECT_EQ(s.sampling.seed, 7u);
  EXPECT_EQ(s.sampling.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(s.sampling.logit_bias.at(5), -2.0f);
  EXPECT_EQ(s.sampling.logprobs, 2);
  EXPECT_EQ(s.sampling.prompt_logprobs, 2);  // echo with logprobs
  EXPECT_EQ(s.sampling.n, 1);                // null is absent
  EXPECT_EQ(s.priority, -1);
  EXPECT_FALSE(s.skip_special_tokens);
  EXPECT_TRUE(s.logprob_text);
  EXPECT_TRUE(r->stream.include_usage);
  EXPECT_TRUE(r->echo);

  for (const auto& [body, field] : std::vector<std::pair<const char*, const char*>>{
           {R"({"prompt": "x", "suffix": "y"})", "suffix"},
           {R"({"prompt": "x", "best_of": 2})", "best_of"},
           {R"({"prompt": "x", "stream_options": {"include_usage": true}})", "stream_options"},
           {R"({"prompt": "x", "stream": true, "stream_options": {"x": 1}})", "stream_options.x"},
           {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
           {R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens"},
           {R"({"prompt": "x", "logit_bias": {"a": 1}})", "logit_bias"},
           {R"({"prompt": "x", "stop": [1]})", "stop[0]"},
           {R"({"prompt": {"a": 1}})", "prompt"},
           {R"({"prompt": ["a", 1]})", "prompt[1]"},
           {R"({})", "prompt"}}) {
    auto bad = ParseCompletionRequest(Body(body), "m");
    ASSERT_FALSE(bad.ok()) << body;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(serving::ErrorField(bad.status()), field) << body << ": " << bad.status();
  }
  auto model = ParseCompletionRequest(Body(R"({"prompt": "x", "model": "gpt-4"})"), "m");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
}

TEST(ChatRequestTest, ConversationAndOptions) {
  auto r = ParseChatRequest(Body(R"({"messages": [{"role": "developer", "content": "be brief"},
                             {"role": "user", "content": [{"type": "text", "text": "a"},
                                                          {"type": "text", "text": "b"}]},
                             {"role": "assistant", "content": null, "tool_calls": [
                               {"id": "c1", "type": "function",
                                "function": {"name": "f", "arguments": "{}"}}]},
                             {"role": "tool", "tool_call_id": "c1", "content": "42"}],
               "tools": [{"type": "function", "function": {"name": "f"}}],
               "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 3,
               "chat_template_kwargs": {"enable_thinking": false}})"),
                            "m");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& chat = std::get<serving::ChatPrompt>(r->request.prompt);
  EXPECT_EQ(chat.messages[0]["role"], "system");
  EXPECT_EQ(chat.messages[1]["content"], "a\nb");
  EXPECT_EQ(chat.messages[2]["content"], "");  // DeepSeek's template cannot take a null
  EXPECT_EQ(chat.messages[2]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(chat.messages[3]["tool_call_id"], "c1");
  EXPECT_FALSE(chat.tools.is_null());
  EXPECT_EQ(chat.template_kwargs["enable_thinking"], false);
  EXPECT_EQ(r->request.sampling.max_tokens, 9);
  EXPECT_EQ(r->request.sampling.logprobs, 3);
  EXPECT_TRUE(r->parse_tool_calls);
  EXPECT_FALSE(r->request.max_tokens_to_context);
  // Sampling errors name the chat fields.
  EXPECT_EQ(r->request.names.Sampling("max_tokens"), "max_completion_tokens");
  EXPECT_EQ(r->request.names.Sampling("logprobs"), "top_logprobs");

  auto plain = ParseChatRequest(Body(R"({"messages": [{"role": "user", "content": "hi"}]})"), "m");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->request.max_tokens_to_context);
  EXPECT_FALSE(plain->parse_tool_calls);

  for (
      const auto& [body, field] : std::vector<std::pair<const char*, const char*>>{
          {R"({"messages": []})", "messages"},
          {R"({"messages": [{"role": "bot", "content": "x"}]})", "messages[0].role"},
          {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
          {R"({"messages": [{"role": "user", "content": "x", "audio": {}}]})", "messages[0].audio"},
          {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}})",
           "response_format.type"},
          {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 1})", "top_logprobs"},
          {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required",
                "tools": [{"type": "function", "function": {"name": "f"}}], "response_format": {"type": "json_object"}})",
           "tool_choice"},
          {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})", "tool_choice"},
          {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function", "function": {"name": "g"}},
                "tools": [{"type": "function", "function": {"name": "f"}}]})",
           "tool_choice.function.name"},
          {R"({"messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f", "strict": 1}}]})",
           "tools[0].function.strict"},
          {R"({"messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]})",
           "tools[0].function.parameters"},
          {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web"}]})", "tools[0]"}}) {
    auto bad = ParseChatRequest(Body(body), "m");
    ASSERT_FALSE(bad.ok()) << body;
    EXPECT_EQ(serving::ErrorField(bad.status()), field) << body << ": " << bad.status();
  }
}

TEST(ResponseFormatTest, ShapesBecomeConstraints) {
  using Kind = structured::Constraint::Kind;
  auto none = ParseResponseFormat(Body(R"({"response_format": null})"));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->active());
  auto text = ParseResponseFormat(Body(R"({"response_format": {"type": "text"}})"));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_FALSE(text->active());
  auto object = ParseResponseFormat(Body(R"({"response_format": {"type": "json_object"}})"));
  ASSERT_TRUE(object.ok()) << object.status();
  EXPECT_EQ(object->kind, Kind::kJsonObject);
  auto schema = ParseResponseFormat(Body(
      R"({"response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true,
          "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}})"));
  ASSERT_TRUE(schema.ok()) << schema.status();
  EXPECT_EQ(schema->kind, Kind::kJsonSchema);
  EXPECT_EQ(Json::parse(schema->value), Json::parse(R"({"type": "object",
                                                        "properties": {"a": {"type": "integer"}}})"));

  for (const auto& [body, field] : std::vector<std::pair<const char*, const char*>>{
           {R"({"response_format": "json"})", "response_format"},
           {R"({"response_format": {}})", "response_format.type"},
           {R"({"response_format": {"type": "yaml"}})", "response_format.type"},
           {R"({"response_format": {"type": "text", "schema": {}}})", "response_format.schema"},
           {R"({"response_format": {"type": "json_schema"}})", "response_format.json_schema"},
           {R"({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}})",
            "response_format.json_schema.name"},
           {R"({"response_format": {"type": "json_schema", "json_schema": {"name": "n"}}})",
            "response_format.json_schema.schema"},
           {R"({"response_format": {"type": "json_schema",
                "json_schema": {"name": "n", "schema": {}, "strict": "yes"}}})",
            "response_format.json_schema.strict"},
           {R"({"response_format": {"type": "json_schema",
                "json_schema": {"name": "n", "schema": {}, "extra": 1}}})",
            "response_format.json_schema.extra"}}) {
    auto bad = ParseResponseFormat(Body(body));
    ASSERT_FALSE(bad.ok()) << body;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_EQ(serving::ErrorField(bad.status()), field) << body << ": " << bad.status();
  }

  // Both endpoints set the request's constraint, named after response_format in errors.
  auto chat_text = ParseChatRequest(Body(R"({"messages": [{"role": "user", "content": "x"}],
               "response_format": {"type": "text"}})"),
                                    "m");
  ASSERT_TRUE(chat_text.ok()) << chat_text.status();
  EXPECT_FALSE(chat_text->request.sampling.constraint.active());
  auto chat_json = ParseChatRequest(Body(R"({"messages": [{"role": "user", "content": "x"}],
               "response_format": {"type": "json_schema", "json_schema": {"name": "p",
                                   "schema": {"type": "object"}}}})"),
                                    "m");
  ASSERT_TRUE(chat_json.ok()) << chat_json.status();
  EXPECT_EQ(chat_json->request.sampling.constraint.kind, Kind::kJsonSchema);
  EXPECT_FALSE(chat_json->request.sampling.constraint.any_whitespace);  // compact JSON
  EXPECT_EQ(chat_json->request.names.Sampling("json_schema"), "response_format.json_schema.schema");
  auto completion_json =
      ParseCompletionRequest(Body(R"({"prompt": "x", "response_format": {"type": "json_object"}})"), "m");
  ASSERT_TRUE(completion_json.ok()) << completion_json.status();
  EXPECT_EQ(completion_json->prompts[0].sampling.constraint.kind, Kind::kJsonObject);
  EXPECT_EQ(completion_json->prompts[0].names.Sampling("json_object"), "response_format");
}

// Forced tool calls: the constraint in each format's markup, one call for a named function or
// without parallel calls, strict schemas checked up front and non-strict ones relaxed.
TEST(ToolChoiceTest, ForcedCallsBecomeToolCallConstraints) {
  const Json body = Body(R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required",
      "tools": [{"type": "function", "function": {"name": "get_weather", "strict": true,
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "loose",
                 "parameters": {"type": "object", "properties": {"xs": {"uniqueItems": true}}}}}]})");
  auto chat = ParseChatRequest(body, "m");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_TRUE(chat->parse_tool_calls);
  EXPECT_EQ(chat->tool_choice.mode, ToolChoice::Mode::kRequired);
  auto hermes = ForcedToolCallConstraint(chat->tools, chat->tool_choice, true, parsers::ToolCallFormat::kHermes);
  ASSERT_TRUE(hermes.ok()) << hermes.status();
  EXPECT_EQ(hermes->kind, structured::Constraint::Kind::kToolCalls);
  const Json spec = Json::parse(hermes->value);
  EXPECT_EQ(spec["max_calls"], 0);
  ASSERT_EQ(spec["calls"].size(), 2u);
  EXPECT_EQ(spec["calls"][0]["before"], "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ");
  EXPECT_EQ(spec["calls"][0]["after"], "}\n</tool_call>");
  EXPECT_EQ(spec["calls"][0]["arguments"]["required"], Json::array({"city"}));
  EXPECT_TRUE(spec["calls"][1]["arguments"].is_null());  // not strict and not enforceable: any object
  auto deepseek = ForcedToolCallConstraint(chat->tools, chat->tool_choice, /*parallel_tool_calls=*/false,
                                           parsers::ToolCallFormat::kDeepSeekV3);
  ASSERT_TRUE(deepseek.ok()) << deepseek.status();
  const Json ds = Json::parse(deepseek->value);
  EXPECT_EQ(ds["begin"], "<｜tool▁calls▁begin｜>");
  EXPECT_EQ(ds["max_calls"], 1);
  EXPECT_EQ(ds["calls"][0]["before"], "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n");
  EXPECT_EQ(ds["calls"][0]["after"], "\n```<｜tool▁call▁end｜>");
  auto none = ForcedToolCallConstraint(chat->tools, chat->tool_choice, true, parsers::ToolCallFormat::kNone);
  EXPECT_EQ(serving::ErrorField(none.status()), "tool_choice");

  Json strict = body;
  strict["tools"][1]["function"]["strict"] = true;
  auto refused = ForcedToolCallConstraint(strict["tools"], chat->tool_choice, true, parsers::ToolCallFormat::kHermes);
  EXPECT_EQ(serving::ErrorField(refused.status()), "tools[1].function.parameters");
  EXPECT_THAT(refused.status().message(), HasSubstr("uniqueItems"));

  Json named = body;
  named["tool_choice"] = Body(R"({"type": "function", "function": {"name": "get_weather"}})");
  auto one = ParseChatRequest(named, "m");
  ASSERT_TRUE(one.ok()) << one.status();
  auto constraint = ForcedToolCallConstraint(one->tools, one->tool_choice, true, parsers::ToolCallFormat::kHermes);
  ASSERT_TRUE(constraint.ok()) << constraint.status();
  EXPECT_EQ(Json::parse(constraint->value)["calls"].size(), 1u);
  EXPECT_EQ(Json::parse(constraint->value)["max_calls"], 1);

  Json automatic = body;
  automatic["tool_choice"] = "auto";
  auto parsed = ParseChatRequest(automatic, "m");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_FALSE(parsed->tool_choice.forced());
  EXPECT_FALSE(parsed->request.sampling.constraint.active());  // the router adds it (below)
}

// tool_choice "auto" with a strict tool: free text, then calls constrained once opened (strict
// tools' arguments by their schema, non-strict ones any object); no strict tool or no tool-call
// format: unconstrained; response_format keeps its own constraint.
TEST(ToolChoiceTest, AutoWithStrictToolsBecomesTriggeredConstraint) {
  const Json body = Body(R"({"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "get_weather", "strict": true,
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                                "additionalProperties": false}}},
                {"type": "function", "function": {"name": "loose",
                 "parameters": {"type": "object", "properties": {"xs": {"uniqueItems": true}}}}}]})");
  auto chat = ParseChatRequest(body, "m");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->tool_choice.mode, ToolChoice::Mode::kAuto);
  auto hermes = AutoToolCallConstraint(chat->tools, true, parsers::ToolCallFormat::kHermes);
  ASSERT_TRUE(hermes.ok()) << hermes.status();
  ASSERT_TRUE(hermes->has_value());
  EXPECT_EQ((*hermes)->kind, structured::Constraint::Kind::kTriggered);
  const Json spec = Json::parse((*hermes)->value);
  EXPECT_EQ(spec["trigger"], "<tool_call>");
  EXPECT_EQ(spec["max_triggers"], 0);
  EXPECT_EQ(spec["tool_calls"]["calls"][0]["before"], "\n{\"name\": \"get_weather\", \"arguments\": ");
  EXPECT_TRUE(spec["tool_calls"]["calls"][1]["arguments"].is_null());  // not strict: any object

  // The language, over a byte vocabulary.
  std::vector<std::optional<std::string>> bytes(257);
  for (int i = 0; i < 256; ++i) bytes[i] = std::string(1, static_cast<char>(i));
  auto vocab = structured::TokenVocabulary::Create(std::move(bytes), {.stop_ids = {256}});
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  structured::ConstraintCompiler compiler(*vocab);
  auto matches = [&](const structured::Constraint& c, const std::string& text) {
    auto g = compiler.Compile(c);
    EXPECT_TRUE(g.ok()) << g.status();
    if (!g.ok()) return false;
    structured::GrammarMatcher m(*g);
    return m.AcceptBytes(text) && m.CanEnd();
  };
  const std::string call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Rome\"}}\n</tool_call>";
  const std::string loose = "<tool_call>\n{\"name\": \"loose\", \"arguments\": {\"xs\":[1,1]}}\n</tool_call>";
  EXPECT_TRUE(matches(**hermes, "Sure."));
  EXPECT_TRUE(matches(**hermes, "Sure.\n" + call + "\n" + loose + "\nDone."));
  EXPECT_FALSE(matches(**hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(matches(**hermes, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>"));
  auto single = AutoToolCallConstraint(chat->tools, /*parallel_tool_calls=*/false, parsers::ToolCallFormat::kHermes);
  ASSERT_TRUE(single.ok() && single->has_value());
  EXPECT_TRUE(matches(**single, call + " ok"));
  EXPECT_FALSE(matches(**single, call + "\n" + call));

  auto deepseek = AutoToolCallConstraint(chat->tools, true, parsers::ToolCallFormat::kDeepSeekV3);
  ASSERT_TRUE(deepseek.ok() && deepseek->has_value());
  const Json ds = Json::parse((*deepseek)->value);
  EXPECT_EQ(ds["trigger"], "<｜tool▁calls▁begin｜>");
  EXPECT_EQ(ds["avoid"], Json::array({"<｜tool▁call▁begin｜>"}));
  EXPECT_EQ(ds["tool_calls"]["end"], "<｜tool▁calls▁end｜>");
  EXPECT_TRUE(matches(**deepseek,
                      "Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>"
                      "get_weather\n```json\n{\"city\":\"Rome\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"));

  // Unconstrained without a strict tool or a format; a strict schema the compiler cannot take is refused.
  Json lax = body;
  lax["tools"][0]["function"]["strict"] = false;
  auto none = AutoToolCallConstraint(lax["tools"], true, parsers::ToolCallFormat::kHermes);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto no_format = AutoToolCallConstraint(chat->tools, true, parsers::ToolCallFormat::kNone);
  ASSERT_TRUE(no_format.ok());
  EXPECT_FALSE(no_format->has_value());
  Json strict = body;
  strict["tools"][1]["function"]["strict"] = true;
  auto refused = AutoToolCallConstraint(strict["tools"], true, parsers::ToolCallFormat::kHermes);
  EXPECT_EQ(serving::ErrorField(refused.status()), "tools[1].function.parameters");

  // response_format wins: the request keeps no tools for the router to constrain.
  Json with_format = body;
  with_format["response_format"] = Body(R"({"type": "json_object"})");
  auto formatted = ParseChatRequest(with_format, "m");
  ASSERT_TRUE(formatted.ok()) << formatted.status();
  EXPECT_TRUE(formatted->tools.is_null());
  EXPECT_EQ(formatted->request.sampling.constraint.kind, structured::Constraint::Kind::kJsonObject);
  EXPECT_FALSE(chat->tools.is_null());
}

TEST(OpenAiErrorsTest, ShapeAndStatus) {
  const HttpResponse r = ErrorResponse(serving::InvalidField("temperature", " must be in [0, 100]"));
  EXPECT_EQ(r.status, 400);
  const Json e = Json::parse(r.body)["error"];
  EXPECT_EQ(e["message"], "temperature must be in [0, 100]");
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_EQ(e["param"], "temperature");
  EXPECT_TRUE(e["code"].is_null());
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusOf(absl::StatusCode::kUnavailable), 503);
  const HttpResponse full = ErrorResponse(absl::ResourceExhaustedError("queue full"));
  EXPECT_EQ(full.status, 429);
  EXPECT_THAT(full.headers, ::testing::Contains(std::pair<std::string, std::string>("Retry-After", "1")));
}

TEST(OpenAiFormatTest, LogprobsFormats) {
  serving::OutputLogprobs a{
      .token = {.token_id = 5, .logprob = -0.5f, .text = " the"},
      .top = {{.token_id = 5, .logprob = -0.5f, .text = " the"}, {.token_id = 6, .logprob = -1.0f, .text = " a"}}};
  serving::OutputLogprobs b{.token = {.token_id = 7, .logprob = -INFINITY, .text = " cat"}};
  LegacyLogprobs legacy;
  legacy.Append(a);
  legacy.Append(b);
  const Json l = legacy.Take();
  EXPECT_EQ(l["tokens"], Json({" the", " cat"}));
  EXPECT_EQ(l["token_logprobs"][1], -9999.0);
  EXPECT_EQ(l["text_offset"], Json({0, 4}));
  EXPECT_EQ(l["top_logprobs"][0][" a"], -1.0);
  EXPECT_TRUE(legacy.empty());
  const Json chat = ChatLogprobContent({a}, 1);
  EXPECT_EQ(chat[0]["token"], " the");
  EXPECT_EQ(chat[0]["bytes"], Json({32, 116, 104, 101}));
  EXPECT_EQ(chat[0]["top_logprobs"].size(), 1u);
  EXPECT_EQ(SseEvent(Json{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(UsageJson(3, 4, 1)["total_tokens"], 7);
}

TEST(HttpWireTest, ResponsesAndChunks) {
  const std::string r = SerializeResponse({.status = 404, .body = "{}"}, true, false);
  EXPECT_THAT(r, ::testing::StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(r, HasSubstr("Connection: keep-alive\r\nContent-Length: 2\r\n"));
  EXPECT_THAT(r, ::testing::EndsWith("\r\n\r\n{}"));
  EXPECT_THAT(SerializeResponse({.body = "abc"}, false, true), ::testing::EndsWith("Content-Length: 3\r\n\r\n"));
  EXPECT_EQ(Chunk("hello, world!!!!"), "10\r\nhello, world!!!!\r\n");
  EXPECT_EQ(Chunk(""), "");
}

}  // namespace
}  // namespace moeserve::api::openai
