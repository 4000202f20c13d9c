#include "server/api/request_convert.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

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
  return s;
}

absl::Status ValidateSampling(const SamplingParams& params, const SamplingLimits& limits) {
  absl::Status s = Validate(params, limits);
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("sampling.", std::string(s.message())));
}

absl::Status ValidatePromptIds(const std::vector<int32_t>& ids, int32_t vocab_size,
                               int32_t max_model_len, const std::string& field) {
  if (ids.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " must not be empty"));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "] = ", ids[i],
                                                     " is outside the vocabulary [0, ",
                                                     vocab_size, ")"));
    }
  }
  if (max_model_len > 0 && static_cast<int64_t>(ids.size()) >= max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": the prompt has ", ids.size(),
                     " tokens; the context (max_model_len) is ", max_model_len,
                     " tokens and at least one output token must fit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequestFields(const v1::GenerateRequest& request) {
  if (request.request_id().size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("request_id must be at most ",
                                                   kMaxRequestIdBytes, " bytes, got ",
                                                   request.request_id().size()));
  }
  if (request.cache_salt().size() > kMaxCacheSaltBytes) {
    return absl::InvalidArgumentError(absl::StrCat("cache_salt must be at most ",
                                                   kMaxCacheSaltBytes, " bytes, got ",
                                                   request.cache_salt().size()));
  }
  switch (request.input_case()) {
    case v1::GenerateRequest::INPUT_NOT_SET:
      return absl::InvalidArgumentError(
          "input: exactly one of text, token_ids or messages must be set");
    case v1::GenerateRequest::kText:
      if (request.text().empty()) return absl::InvalidArgumentError("text must not be empty");
      break;
    case v1::GenerateRequest::kTokenIds:
      if (request.token_ids().ids().empty()) {
        return absl::InvalidArgumentError("token_ids.ids must not be empty");
      }
      break;
    case v1::GenerateRequest::kMessages:
      if (request.messages().messages().empty()) {
        return absl::InvalidArgumentError("messages.messages must not be empty");
      }
      break;
  }
  return absl::OkStatus();
}

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kAbort:
    case FinishReason::kError:
      return v1::FINISH_REASON_ABORT;
    case FinishReason::kNone:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

namespace {

double SecondsBetween(absl::Time from, absl::Time to) {
  if (from == absl::InfinitePast() || to == absl::InfinitePast()) return 0.0;
  return absl::ToDoubleSeconds(to - from);
}

}  // namespace

void ToProto(const RequestOutput& delta, v1::GenerateResponse* response) {
  response->set_index(delta.index);
  response->set_text(delta.text);
  response->mutable_token_ids()->Add(delta.token_ids.begin(), delta.token_ids.end());
  auto add = [](const TokenLogprobs& lp, v1::TokenLogprobs* out) {
    out->set_token_id(lp.token_id);
    out->set_logprob(lp.logprob);
    for (const TokenLogprob& top : lp.top) {
      v1::TopLogprob* t = out->add_top();
      t->set_token_id(top.token_id);
      t->set_logprob(top.logprob);
    }
  };
  for (const TokenLogprobs& lp : delta.logprobs) add(lp, response->add_logprobs());
  for (const TokenLogprobs& lp : delta.prompt_logprobs) add(lp, response->add_prompt_logprobs());
  if (!delta.finished) return;
  response->set_finish_reason(ToProto(delta.finish_reason));
  if (delta.finish_reason == FinishReason::kStop) {
    if (!delta.stop_string.empty()) response->set_stop_string(delta.stop_string);
    if (delta.stop_token_id >= 0) response->set_stop_token_id(delta.stop_token_id);
  }
  v1::Usage* usage = response->mutable_usage();
  usage->set_prompt_tokens(delta.usage.prompt_tokens);
  usage->set_completion_tokens(delta.usage.completion_tokens);
  usage->set_cached_tokens(delta.usage.cached_tokens);
  usage->set_num_preemptions(delta.usage.num_preemptions);
  const RequestTimings& t = delta.timings;
  v1::Timings* timings = response->mutable_timings();
  timings->set_queue_seconds(SecondsBetween(t.arrival, t.first_scheduled));
  timings->set_time_to_first_token_seconds(SecondsBetween(t.arrival, t.first_token));
  timings->set_e2e_seconds(SecondsBetween(t.arrival, t.finish));
}

}  // namespace moeserve::api
