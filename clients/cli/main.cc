// moeserve-cli: talks to a moeserve server.
//
//   moeserve-cli --addr 127.0.0.1:50051 "Once upon a time"    streams the completion to stdout
//   moeserve-cli --chat "Hello"                               one chat turn (model's template)
//   moeserve-cli --tokenize "some text" | --detokenize 1,2,3 | --model-info | --health
//
// Exit status 0 on success; otherwise 1 with "moeserve-cli: CODE: message" on stderr (2 for usage
// errors).

#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "clients/common/channel.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "moeserve/v1/inference.grpc.pb.h"

namespace {

namespace v1 = moeserve::v1;
using moeserve::clients::CodeName;

struct Options {
  std::string prompt;
  bool chat = false;
  std::string system;
  std::string token_ids;
  // Other calls.
  bool tokenize = false;
  std::string detokenize;
  bool model_info = false;
  bool health = false;
  // Sampling.
  int max_tokens = 256;
  int n = 1;  // completions; > 1 prints each, prefixed with its index, at the end
  double temperature = 0.0;
  int top_k = 0;
  double top_p = 1.0;
  double min_p = 0.0;
  double repetition_penalty = 1.0;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  int64_t seed = -1;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int priority = 0;
  std::string cache_salt;
  bool usage = false;
  double timeout = 0.0;
  // Address, API key, TLS.
  moeserve::clients::ChannelOptions channel;
};

int Fail(const grpc::Status& status) {
  std::cerr << "moeserve-cli: " << CodeName(status.error_code()) << ": " << status.error_message() << "\n";
  return 1;
}

int Fail(const std::string& message) {
  std::cerr << "moeserve-cli: " << message << "\n";
  return 1;
}

bool ParseIds(const std::string& text, std::vector<int32_t>* ids) {
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, ',')) {
    if (part.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      size_t used = 0;
      ids->push_back(std::stoi(part, &used));
      if (part.find_first_not_of(" \t", used) != std::string::npos) return false;
    } catch (...) {
      return false;
    }
  }
  return true;
}

class Client {
 public:
  Client(std::shared_ptr<grpc::Channel> channel, std::string bearer, double timeout)
      : channel_(std::move(channel)),
        stub_(v1::Inference::NewStub(channel_)),
        bearer_(std::move(bearer)),
        timeout_(timeout) {}

  void Prepare(grpc::ClientContext* context) const {
    if (!bearer_.empty()) context->AddMetadata("authorization", "Bearer " + bearer_);
    if (timeout_ > 0) {
      context->set_deadline(std::chrono::system_clock::now() +
                            std::chrono::microseconds(static_cast<int64_t>(timeout_ * 1e6)));
    }
  }

  int Generate(const Options& o) {
    v1::GenerateRequest request;
    if (!o.token_ids.empty()) {
      std::vector<int32_t> ids;
      if (!ParseIds(o.token_ids, &ids)) return Fail("--token-ids: expected comma-separated integers");
      request.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
    } else if (o.chat) {
      v1::ChatMessages* messages = request.mutable_messages();
      if (!o.system.empty()) {
        v1::ChatMessage* m = messages->add_messages();
        m->set_role("system");
        m->set_content(o.system);
      }
      v1::ChatMessage* m = messages->add_messages();
      m->set_role("user");
      m->set_content(o.prompt);
    } else {
      request.set_text(o.prompt);
    }
    v1::SamplingParams* s = request.mutable_sampling();
    s->set_max_tokens(o.max_tokens);
    if (o.n != 1) s->set_n(o.n);
    s->set_temperature(static_cast<float>(o.temperature));
    if (o.top_k != 0) s->set_top_k(o.top_k);
    if (o.top_p != 1.0) s->set_top_p(static_cast<float>(o.top_p));
    if (o.min_p != 0.0) s->set_min_p(static_cast<float>(o.min_p));
    if (o.repetition_penalty != 1.0) s->set_repetition_penalty(static_cast<float>(o.repetition_penalty));
    if (o.presence_penalty != 0.0) s->set_presence_penalty(static_cast<float>(o.presence_penalty));
    if (o.frequency_penalty != 0.0) s->set_frequency_penalty(static_cast<float>(o.frequency_penalty));
    if (o.seed >= 0) s->set_seed(static_cast<uint64_t>(o.seed));
    for (const std::string& stop : o.stop) s->add_stop(stop);
    s->set_ignore_eos(o.ignore_eos);
    request.set_priority(o.priority);
    request.set_cache_salt(o.cache_salt);

    grpc::ClientContext context;
    Prepare(&context);
    std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = stub_->Generate(&context, request);
    v1::GenerateResponse response;
    v1::GenerateResponse last;
    std::map<int32_t, std::string> texts;  // n > 1: by completion index
    while (reader->Read(&response)) {
      if (o.n == 1) {
        std::cout << response.text() << std::flush;
      } else {
        texts[response.index()] += response.text();
      }
      if (response.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) last = response;
    }
    grpc::Status status = reader->Finish();
    for (const auto& [index, text] : texts) std::cout << "[" << index << "] " << text << "\n";
    if (o.n == 1) std::cout << "\n";
    std::cout << std::flush;
    if (!status.ok()) return Fail(status);
    if (o.usage) {
      std::cerr << "finish_reason=" << v1::FinishReason_Name(last.finish_reason())
                << " prompt_tokens=" << last.usage().prompt_tokens()
                << " completion_tokens=" << last.usage().completion_tokens()
                << " cached_tokens=" << last.usage().cached_tokens()
                << " ttft_s=" << last.timings().time_to_first_token_seconds()
                << " e2e_s=" << last.timings().e2e_seconds() << "\n";
    }
    return 0;
  }

  int Tokenize(const Options& o) {
    v1::TokenizeRequest request;
    request.set_text(o.prompt);
    v1::TokenizeResponse response;
    grpc::ClientContext context;
    Prepare(&context);
    grpc::Status status = stub_->Tokenize(&context, request, &response);
    if (!status.ok()) return Fail(status);
    for (int i = 0; i < response.token_ids_size(); ++i) {
      std::cout << (i > 0 ? " " : "") << response.token_ids(i);
    }
    std::cout << "\n";
    return 0;
  }

  int Detokenize(const Options& o) {
    v1::DetokenizeRequest request;
    std::vector<int32_t> ids;
    if (!ParseIds(o.detokenize, &ids)) return Fail("--detokenize: expected comma-separated integers");
    request.mutable_token_ids()->Add(ids.begin(), ids.end());
    v1::DetokenizeResponse response;
    grpc::ClientContext context;
    Prepare(&context);
    grpc::Status status = stub_->Detokenize(&context, request, &response);
    if (!status.ok()) return Fail(status);
    std::cout << response.text() << "\n";
    return 0;
  }

  int ModelInfo() {
    v1::ModelInfo info;
    grpc::ClientContext context;
    Prepare(&context);
    grpc::Status status = stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
    if (!status.ok()) return Fail(status);
    std::cout << "model_id: " << info.model_id() << "\n"
              << "architecture: " << info.architecture() << "\n"
              << "model_type: " << info.model_type() << "\n"
              << "max_model_len: " << info.max_model_len() << "\n"
              << "vocab_size: " << info.vocab_size() << "\n"
              << "dtype: " << info.dtype() << "\n"
              << "backend: " << info.backend() << "\n"
              << "kv_capacity_tokens: " << info.kv_capacity_tokens() << "\n"
              << "kv_block_size: " << info.kv_block_size() << "\n"
              << "num_experts: " << info.num_experts() << "\n"
              << "has_tokenizer: " << (info.has_tokenizer() ? "true" : "false") << "\n"
              << "has_chat_template: " << (info.has_chat_template() ? "true" : "false") << "\n"
              << "server_version: " << info.server_version() << "\n";
    return 0;
  }

  // Prints SERVING / NOT_SERVING; exit 0 only for SERVING.
  int Health() {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext context;
    Prepare(&context);
    if (timeout_ <= 0) {
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    }
    grpc::Status status = health->Check(&context, request, &response);
    if (!status.ok()) return Fail(status);
    std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
    return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Inference::Stub> stub_;
  std::string bearer_;
  double timeout_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"moeserve-cli: a client of the moeserve gRPC server"};
  app.add_option("prompt", o.prompt, "prompt text (generate, --chat, --tokenize)");
  app.add_option("--addr", o.channel.addr, "server address HOST:PORT")->capture_default_str();
  app.add_flag("--chat", o.chat, "send the prompt as a user message (rendered with the chat template)");
  app.add_option("--system", o.system, "system message for --chat");
  app.add_option("--token-ids", o.token_ids, "prompt as comma-separated token ids");
  app.add_flag("--tokenize", o.tokenize, "print the token ids of the prompt");
  app.add_option("--detokenize", o.detokenize, "print the text of comma-separated token ids");
  app.add_flag("--model-info", o.model_info, "print what the server runs");
  app.add_flag("--health", o.health, "check grpc.health.v1 (exit 0 when SERVING)");
  app.add_option("--max-tokens", o.max_tokens, "output tokens at most")->capture_default_str();
  app.add_option("--n", o.n, "completions of the prompt (each printed as [index] text)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--temperature", o.temperature, "0 = greedy")->capture_default_str();
  app.add_option("--top-k", o.top_k, "0 = off");
  app.add_option("--top-p", o.top_p, "1 = off");
  app.add_option("--min-p", o.min_p, "0 = off");
  app.add_option("--repetition-penalty", o.repetition_penalty, "1 = off");
  app.add_option("--presence-penalty", o.presence_penalty, "0 = off");
  app.add_option("--frequency-penalty", o.frequency_penalty, "0 = off");
  app.add_option("--seed", o.seed, "sampling seed");
  app.add_option("--stop", o.stop, "stop string (repeatable)");
  app.add_flag("--ignore-eos", o.ignore_eos, "keep generating after EOS");
  app.add_option("--priority", o.priority, "lower is served first");
  app.add_option("--cache-salt", o.cache_salt, "prefix-cache salt");
  app.add_flag("--usage", o.usage, "print finish reason, token counts and timings to stderr");
  app.add_option("--timeout", o.timeout, "deadline in seconds (0 = none)");
  moeserve::clients::AddChannelFlags(&app, &o.channel);
  CLI11_PARSE(app, argc, argv);

  std::string key;
  std::string error;
  if (!moeserve::clients::ResolveApiKey(o.channel, &key, &error)) return Fail(error);
  std::shared_ptr<grpc::Channel> channel = moeserve::clients::MakeChannel(o.channel, &error);
  if (channel == nullptr) return Fail(error);
  Client client(channel, key, o.timeout);

  if (o.health) return client.Health();
  if (o.model_info) return client.ModelInfo();
  if (!o.detokenize.empty()) return client.Detokenize(o);
  if (o.tokenize) return client.Tokenize(o);
  if (o.prompt.empty() && o.token_ids.empty()) {
    std::cerr << "moeserve-cli: give a prompt, --token-ids, or one of --tokenize, --detokenize, "
                 "--model-info, --health (see --help)\n";
    return 2;
  }
  return client.Generate(o);
}
