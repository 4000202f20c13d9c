#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "server/tokenizer/incremental_detokenizer.h"
#include "server/tokenizer/template/ast.h"
#include "server/tokenizer/template/interpreter.h"
#include "server/tokenizer/template/parser.h"
#include "server/tokenizer/tokenizer.h"
#include "server/tokenizer/unicode.h"
#include "tests/fuzz/fuzz_time.h"
#include "tests/fuzz/tokenizer_fuzz.h"

namespace moeserve::fuzz {
namespace {

[[noreturn]] void Fail(const char* target, const std::string& what) {
  std::fprintf(stderr, "%s: invariant broken: %s\n", target, what.c_str());
  std::abort();
}

constexpr size_t kMaxEncodeBytes = 1 << 16;
// CPU time (fuzz_time.h). Parsing plus the render's 200,000 steps take milliseconds; an input that
// needs this long (even in a sanitizer build) is a failure.
constexpr absl::Duration kChatTemplateTimeLimit = absl::Seconds(2);

}  // namespace

const Tokenizer& FuzzTokenizer(const std::string& source_dir) {
  static const Tokenizer* const tokenizer = [&] {
    std::string dir = source_dir + "/../shared/data/tokenizers/qwen3";
    if (const char* env = std::getenv("MOESERVE_FUZZ_TOKENIZER"); env != nullptr && *env != '\0') {
      dir = env;
    }
    auto t = Tokenizer::FromDirectory(dir);
    if (!t.ok()) Fail("tokenizer_encode_fuzz", "cannot load " + dir + ": " + std::string(t.status().message()));
    return t->release();
  }();
  return *tokenizer;
}

void FuzzTokenizerEncode(const Tokenizer& tokenizer, std::string_view data) {
  if (data.size() > kMaxEncodeBytes) return;
  const bool valid = IsValidUtf8(data);
  for (const bool special : {false, true}) {
    auto ids = tokenizer.Encode(data, special);
    if (!valid) {
      if (ids.ok()) Fail("tokenizer_encode_fuzz", "invalid UTF-8 accepted");
      if (!absl::IsInvalidArgument(ids.status())) Fail("tokenizer_encode_fuzz", "wrong error code");
      return;
    }
    if (!ids.ok()) Fail("tokenizer_encode_fuzz", "valid UTF-8 rejected: " + std::string(ids.status().message()));
    if (!data.empty() && ids->empty()) Fail("tokenizer_encode_fuzz", "non-empty text encoded to no ids");
    for (const int32_t id : *ids) {
      if (id < 0 || id >= tokenizer.vocab_size()) Fail("tokenizer_encode_fuzz", "id out of range");
    }
    auto text = tokenizer.Decode(*ids);
    if (!text.ok()) Fail("tokenizer_encode_fuzz", "Decode failed on Encode output");
    IncrementalDetokenizer detok(&tokenizer, {}, /*skip_special_tokens=*/false);
    std::string streamed;
    for (const int32_t id : *ids) streamed += detok.Step(id);
    streamed += detok.Flush();
    if (streamed != *text) Fail("tokenizer_encode_fuzz", "incremental detokenizer != Decode");
  }
}

void FuzzTokenizerLoad(std::string_view data) {
  if (data.size() > (1 << 20)) return;
  auto t = Tokenizer::FromJson(data, "");
  if (!t.ok()) return;
  // A loaded tokenizer must survive use.
  for (std::string_view text : {"", "hello world", "a  b\n\n12345 ü 😀"}) {
    auto ids = (*t)->Encode(text);
    if (!ids.ok()) continue;
    for (const int32_t id : *ids) {
      if (id < 0 || id >= (*t)->vocab_size()) Fail("tokenizer_load_fuzz", "id out of range");
    }
    (void)(*t)->Decode(*ids);
  }
}

void FuzzChatTemplate(std::string_view data) {
  if (data.size() > (1 << 16)) return;
  const absl::Duration start = ProcessCpuTime();
  auto nodes = jinja::ParseTemplate(data);
  if (ProcessCpuTime() - start > kChatTemplateTimeLimit) {
    Fail("tokenizer_chat_template_fuzz", "parsing took longer than the per-input limit");
  }
  if (!nodes.ok()) {
    if (!absl::IsInvalidArgument(nodes.status()) ||
        !absl::StartsWith(nodes.status().message(), "chat template line ")) {
      Fail("tokenizer_chat_template_fuzz", "parse error without position: " + std::string(nodes.status().message()));
    }
    return;
  }
  static const jinja::Dict* const context = [] {
    auto* d = new jinja::Dict();
    d->Set("messages", *jinja::Value::FromJson(nlohmann::ordered_json::parse(R"([
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "Hi ü 😀"},
      {"role": "assistant", "content": "<think>r</think>ok", "reasoning_content": "r",
       "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
      {"role": "tool", "content": "42"}])"),
                                               16));
    d->Set("add_generation_prompt", jinja::Value(true));
    d->Set("bos_token", jinja::Value("<s>"));
    d->Set("tools",
           *jinja::Value::FromJson(
               nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {}}}])"),
               16));
    return d;
  }();
  jinja::RenderLimits limits;
  limits.max_steps = 200000;
  limits.max_output_bytes = 1 << 20;
  limits.max_call_depth = 20;
  // Only the evaluation budget may stop the render: the render's own time limit would pass a
  // render that is slow for its budget as a refused template.
  limits.max_time = absl::InfiniteDuration();
  auto out = jinja::Render(*nodes, *context, limits);
  if (ProcessCpuTime() - start > kChatTemplateTimeLimit) {
    Fail("tokenizer_chat_template_fuzz", "parsing and rendering took longer than the per-input limit");
  }
  if (!out.ok() && !absl::IsInvalidArgument(out.status())) {
    Fail("tokenizer_chat_template_fuzz", "render error is not InvalidArgument");
  }
  if (out.ok() && out->size() > limits.max_output_bytes) {
    Fail("tokenizer_chat_template_fuzz", "output limit exceeded");
  }
}

}  // namespace moeserve::fuzz
