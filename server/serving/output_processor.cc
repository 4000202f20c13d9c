#include "server/serving/output_processor.h"

#include <utility>

#include "server/common/logging.h"

namespace moeserve::serving {

SampleOutputProcessor::SampleOutputProcessor(const Tokenizer* tokenizer, absl::Span<const int32_t> prompt_ids,
                                             const SamplingParams& params, SampleOutputOptions options)
    : tokenizer_(tokenizer), options_(options) {
  if (tokenizer_ == nullptr) return;
  detokenizer_.emplace(tokenizer_, prompt_ids, options_.skip_special_tokens);
  if (!params.stop.empty()) stops_.emplace(params.stop);
}

std::string TokenText(const Tokenizer& tokenizer, int32_t id) {
  const int32_t anchor = tokenizer.bos_token_id().value_or(0);
  const int32_t alone[] = {anchor};
  const int32_t pair[] = {anchor, id};
  absl::StatusOr<std::string> prefix = tokenizer.Decode(alone, /*skip_special_tokens=*/false);
  absl::StatusOr<std::string> both = tokenizer.Decode(pair, /*skip_special_tokens=*/false);
  if (!prefix.ok() || !both.ok()) return "";
  if (both->compare(0, prefix->size(), *prefix) != 0) {
    const int32_t ids[] = {id};
    return tokenizer.Decode(ids, /*skip_special_tokens=*/false).value_or("");
  }
  return both->substr(prefix->size());
}

std::string SampleOutputProcessor::TokenText(int32_t id) const {
  if (!options_.logprob_text || tokenizer_ == nullptr) return "";
  return serving::TokenText(*tokenizer_, id);
}

OutputLogprobs SampleOutputProcessor::Assemble(const TokenLogprobs& lp) const {
  OutputLogprobs out;
  out.token = {.token_id = lp.token_id, .logprob = lp.logprob, .text = TokenText(lp.token_id)};
  out.top.reserve(lp.top.size());
  for (const TokenLogprob& t : lp.top) {
    out.top.push_back({.token_id = t.token_id, .logprob = t.logprob, .text = TokenText(t.token_id)});
  }
  return out;
}

bool SampleOutputProcessor::AppendText(std::string text, bool last, Output* out) {
  if (last) text += detokenizer_->Flush();
  if (!stops_.has_value()) {
    out->text += text;
    return false;
  }
  out->text += stops_->Feed(text);
  if (stops_->matched()) {
    out->finished = finished_ = true;
    out->finish_reason = FinishReason::kStop;
    out->stop_string = stops_->matched_string();
    return true;
  }
  if (last) out->text += stops_->Flush();
  return false;
}

Output SampleOutputProcessor::Process(const RequestOutput& delta) {
  MS_CHECK(!finished_) << "output processed after the completion finished";
  Output out;
  out.index = delta.index;
  out.prompt_logprobs.reserve(delta.prompt_logprobs.size());
  for (const TokenLogprobs& lp : delta.prompt_logprobs) out.prompt_logprobs.push_back(Assemble(lp));
  const size_t n = delta.token_ids.size();
  const bool with_logprobs = delta.logprobs.size() == n;
  for (size_t k = 0; k < n; ++k) {
    const int32_t id = delta.token_ids[k];
    out.token_ids.push_back(id);
    if (with_logprobs) out.logprobs.push_back(Assemble(delta.logprobs[k]));
    ++num_tokens_;
    if (!detokenizer_.has_value()) continue;
    const bool last = k + 1 == n && delta.finished;
    if (AppendText(detokenizer_->Step(id), last, &out)) {
      stopped_early_ = !last;  // tokens after this one, if any, are dropped
      return out;
    }
  }
  // A final delta without tokens (abort, error) still releases the text held back.
  if (n == 0 && delta.finished && detokenizer_.has_value() && AppendText("", true, &out)) {
    return out;
  }
  if (delta.finished) {
    out.finished = finished_ = true;
    out.finish_reason = delta.finish_reason;
    out.error = delta.error;
    out.stop_token_id = delta.stop_token_id;
  }
  return out;
}

}  // namespace moeserve::serving
