// A request whose caller gave up stops its chat template render: cancellation and an expired
// deadline end the render within the budget's polling interval with Cancelled / DeadlineExceeded
// (not InvalidArgument: nothing is wrong with the messages), through PromptBuilder and through
// Frontend::Submit's is_cancelled. The template would otherwise spend its whole budget (seconds).

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/serving/frontend.h"
#include "server/serving/prompt_builder.h"
#include "server/tokenizer/tokenizer.h"
#include "tests/engine/engine_test_util.h"
#include "tests/test_util.h"

namespace moeserve::serving {
namespace {

using std::chrono_literals::operator""s;
using ::testing::HasSubstr;

constexpr char kSlowTemplate[] = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";

ChatPrompt OneMessage() {
  ChatPrompt chat;
  chat.messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  return chat;
}

// A copy of models/default whose tokenizer_config.json carries kSlowTemplate.
std::filesystem::path SlowTemplateModel() {
  const std::filesystem::path dir = testing::MakeTempDir("slow_template_model");
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(MOESERVE_SOURCE_DIR) / "models/default")) {
    std::filesystem::copy(entry.path(), dir / entry.path().filename());
  }
  std::ifstream in(dir / "tokenizer_config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  in.close();
  config["chat_template"] = kSlowTemplate;
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
  return dir;
}

// Turns true `after` from now, for the is_cancelled / cancelled probes.
class DelayedFlag {
 public:
  explicit DelayedFlag(std::chrono::milliseconds after)
      : thread_([this, after] {
          std::this_thread::sleep_for(after);
          set_ = true;
        }) {}
  ~DelayedFlag() { thread_.join(); }
  bool get() const { return set_.load(); }

 private:
  std::atomic<bool> set_ = false;
  std::thread thread_;
};

TEST(PromptRenderControlTest, CancellationAndDeadlineStopTheRender) {
  testing::Watchdog watchdog(30s, "cancelled and expired chat template renders");
  auto tokenizer = Tokenizer::FromDirectory(MOESERVE_SOURCE_DIR "/models/default");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto chat = TokenizerChatTemplate::FromTokenizerConfig(nlohmann::json{{"chat_template", kSlowTemplate}}.dump());
  ASSERT_TRUE(chat.ok()) << chat.status();
  const PromptBuilder prompts(tokenizer->get(), *std::move(chat));
  FieldNames names;
  names.prompt = "messages";

  {
    DelayedFlag cancelled(std::chrono::milliseconds(50));
    const absl::Status s = prompts.Build(OneMessage(), names, {.cancelled = [&] { return cancelled.get(); }}).status();
    EXPECT_TRUE(absl::IsCancelled(s)) << s;
  }
  const absl::Status s =
      prompts.Build(OneMessage(), names, {.deadline = absl::Now() + absl::Milliseconds(50)}).status();
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("deadline expired while rendering the chat template"));
}

TEST(PromptRenderControlTest, SubmitStopsTheRenderOfACancelledRequest) {
  testing::Watchdog watchdog(60s, "submitting a request cancelled while its template renders");
  EngineConfig config;
  config.model_dir = SlowTemplateModel().string();
  config.num_threads = 1;
  config.max_model_len = 128;
  auto engine = Engine::Create(config);
  ASSERT_TRUE(engine.ok()) << engine.status();
  (*engine)->Start();
  Frontend frontend(engine->get(), FrontendOptions{});
  ASSERT_TRUE(frontend.prompts().has_chat_template());

  DelayedFlag cancelled(std::chrono::milliseconds(50));
  ServingRequest request;
  request.prompt = OneMessage();
  request.sampling = testing::Greedy(4);
  request.is_cancelled = [&] { return cancelled.get(); };
  const absl::Status s = frontend.Submit(std::move(request)).status();
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_EQ(frontend.GetMetrics().requests_refused, 0);  // not a bad request
  (*engine)->Stop();
}

}  // namespace
}  // namespace moeserve::serving
