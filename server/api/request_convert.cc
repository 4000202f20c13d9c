#include "server/api/request_convert.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/serving/errors.h"

namespace moeserve::api {

SamplingParams FromProto(const v1::SamplingParams& p) {
  SamplingParams s;
  if (p.has_n()) s.n = p.n();
  if (p.has_max_tokens()) s.max_tokens = p.max_tokens();
  if (p.has_min_tokens()) s.min_tokens = p.min_tokens();
  if (p.has_temperature()) s.temperature = p.temperature();
  if (p.has_top_k()) s.top_k = p.top_k();
  if (p.has_top_p()) s.top_p = p.top_p();
  if (p.has_min_p()) s.min_p = p.min_p();
  if (p.has_repetition_penalty()) s.repetition_penalty = p.repetition_penalty();
  if (p.has_presence_penalty()) s.presence_penalty = p.presence_penalty();
  if (p.has_frequency_penalty()) s.frequency_penalty = p.frequency_penalty();
  for (const auto& [id, bias] : p.logit_bias()) s.logit_bias[id] = bias;
  if (p.has_seed()) s.seed = p.seed();
  s.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  s.ignore_eos = p.ignore_eos();
  s.stop.assign(p.stop().begin(), p.stop().end());
  if (p.has_logprobs()) s.logprobs = p.logprobs();
  if (p.has_prompt_logprobs()) s.prompt_logprobs = p.prompt_logprobs();
  using Kind = structured::Constraint::Kind;
  switch (p.constraint_case()) {
    case v1::SamplingParams::kJsonSchema: s.constraint = {.kind = Kind::kJsonSchema, .value = p.json_schema()}; break;
    case v1::SamplingParams::kRegex: s.constraint = {.kind = Kind::kRegex, .value = p.regex()}; break;
    case v1::SamplingParams::kGrammar: s.constraint = {.kind = Kind::kGrammar, .value = p.grammar()}; break;
    case v1::SamplingParams::kJsonObject:
      if (p.json_object()) s.constraint = {.kind = Kind::kJsonObject};
      break;
    case v1::SamplingParams::CONSTRAINT_NOT_SET: break;
  }
  s.constraint.any_whitespace = p.json_any_whitespace();
  return s;
}

serving::FieldNames GrpcFieldNames(v1::GenerateRequest::InputCase input) {
  serving::FieldNames names;
  names.sampling_prefix = "sampling.";
  switch (input) {
    case v1::GenerateRequest::kText: names.prompt = "text"; break;
    case v1::GenerateRequest::kMessages: names.prompt = "messages.messages"; break;
    default: names.prompt = "token_ids.ids"; break;
  }
  return names;
}

namespace {

serving::ChatPrompt FromProto(const v1::ChatMessages& messages) {
  serving::ChatPrompt chat;
  chat.add_generation_prompt = !messages.has_add_generation_prompt() || messages.add_generation_prompt();
  for (const v1::ChatMessage& m : messages.messages()) {
    chat.messages.push_back({{"role", m.role()}, {"content", m.content()}});
  }
  return chat;
}

}  // namespace

absl::StatusOr<serving::ServingRequest> FromProto(const v1::GenerateRequest& request) {
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return serving::InvalidField("request_id", absl::StrCat(" must be at most ", kMaxRequestIdBytes, " bytes, got ",
                                                            request.request_id().size()));
  }
  serving::ServingRequest out;
  switch (request.input_case()) {
    case v1::GenerateRequest::INPUT_NOT_SET:
      return serving::InvalidField("input", ": exactly one of text, token_ids or messages must be set");
    case v1::GenerateRequest::kText:
      if (request.text().empty()) return serving::InvalidField("text", " must not be empty");
      out.prompt =
          serving::TextPrompt{.text = request.text(),
                              .add_special_tokens = !request.has_add_special_tokens() || request.add_special_tokens()};
      break;
    case v1::GenerateRequest::kTokenIds:
      if (request.token_ids().ids().empty()) {
        return serving::InvalidField("token_ids.ids", " must not be empty");
      }
      out.prompt = serving::TokenPrompt{{request.token_ids().ids().begin(), request.token_ids().ids().end()}};
      break;
    case v1::GenerateRequest::kMessages:
      if (request.messages().messages().empty()) {
        return serving::InvalidField("messages.messages", " must not be empty");
      }
      out.prompt = FromProto(request.messages());
      break;
  }
  out.sampling = FromProto(request.sampling());
  out.priority = request.priority();
  out.cache_salt = request.cache_salt();
  out.skip_special_tokens = !request.has_skip_special_tokens() || request.skip_special_tokens();
  out.names = GrpcFieldNames(request.input_case());
  return out;
}

absl::StatusOr<serving::PromptInput> FromProto(const v1::TokenizeRequest& request) {
  switch (request.input_case()) {
    case v1::TokenizeRequest::kText:
      return serving::TextPrompt{
          .text = request.text(),
          .add_special_tokens = !request.has_add_special_tokens() || request.add_special_tokens()};
    case v1::TokenizeRequest::kMessages: return FromProto(request.messages());
    case v1::TokenizeRequest::INPUT_NOT_SET: break;
  }
  return serving::InvalidField("input", ": exactly one of text or messages must be set");
}

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kAbort:
    case FinishReason::kError: return v1::FINISH_REASON_ABORT;
    case FinishReason::kNone: break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

namespace {

double SecondsBetween(absl::Time from, absl::Time to) {
  if (from == absl::InfinitePast() || to == absl::InfinitePast()) return 0.0;
  return absl::ToDoubleSeconds(to - from);
}

void AddLogprobs(const serving::OutputLogprobs& lp, v1::TokenLogprobs* out) {
  out->set_token_id(lp.token.token_id);
  out->set_logprob(lp.token.logprob);
  for (const serving::LogprobToken& top : lp.top) {
    v1::TopLogprob* t = out->add_top();
    t->set_token_id(top.token_id);
    t->set_logprob(top.logprob);
  }
}

}  // namespace

void ToProto(const serving::Output& output, v1::GenerateResponse* response) {
  response->set_index(output.index);
  response->set_text(output.text);
  response->mutable_token_ids()->Add(output.token_ids.begin(), output.token_ids.end());
  for (const serving::OutputLogprobs& lp : output.logprobs) AddLogprobs(lp, response->add_logprobs());
  for (const serving::OutputLogprobs& lp : output.prompt_logprobs) {
    AddLogprobs(lp, response->add_prompt_logprobs());
  }
  if (!output.finished) return;
  response->set_finish_reason(ToProto(output.finish_reason));
  if (output.finish_reason == FinishReason::kStop) {
    if (!output.stop_string.empty()) response->set_stop_string(output.stop_string);
    if (output.stop_token_id >= 0) response->set_stop_token_id(output.stop_token_id);
  }
  v1::Usage* usage = response->mutable_usage();
  usage->set_prompt_tokens(output.usage.prompt_tokens);
  usage->set_completion_tokens(output.usage.completion_tokens);
  usage->set_cached_tokens(output.usage.cached_tokens);
  usage->set_num_preemptions(output.usage.num_preemptions);
  const RequestTimings& t = output.timings;
  v1::Timings* timings = response->mutable_timings();
  timings->set_queue_seconds(SecondsBetween(t.arrival, t.first_scheduled));
  timings->set_time_to_first_token_seconds(SecondsBetween(t.arrival, t.first_token));
  timings->set_e2e_seconds(SecondsBetween(t.arrival, t.finish));
}

}  // namespace moeserve::api
