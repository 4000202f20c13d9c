#include "server/runner/model_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/sampling/device_sampling.h"

namespace moeserve {

ModelRunner::ModelRunner(Model* model, Backend* backend, Sampler* sampler)
    : model_(model),
      backend_(backend),
      sampler_(sampler),
      vocab_size_(static_cast<int32_t>(model->config().vocab_size)) {}

absl::Status ModelRunner::AllocateKvCache(const KvLayout& layout) {
  RETURN_IF_ERROR(layout.Validate());
  decode_graphs_.reset();
  builder_.reset();
  RETURN_IF_ERROR(model_->AllocateKvCache(layout));
  builder_.emplace(layout);
  return absl::OkStatus();
}

absl::Status ModelRunner::EnableMtp(int32_t num_drafts, int32_t max_model_len) {
  if (!model_->has_mtp()) {
    return absl::FailedPreconditionError("the model has no multi-token-prediction layer loaded");
  }
  mtp_ = std::make_unique<MtpDrafter>(model_, backend_, sampler_, num_drafts, max_model_len);
  return absl::OkStatus();
}

bool ModelRunner::EnableDecodeGraphs(const DecodeGraphOptions& options) {
  if (!builder_.has_value()) return false;
  decode_graphs_ = DecodeGraphRunner::Create(model_, backend_, options);
  return decode_graphs_ != nullptr;
}

absl::StatusOr<Tensor> ModelRunner::RunForward(const ForwardBatch& batch) {
  if (decode_graphs_ != nullptr) {
    ASSIGN_OR_RETURN(Tensor logits, decode_graphs_->Run(batch));
    if (logits.defined()) return logits;
  }
  return model_->Forward(batch);
}

absl::Status ModelRunner::Execute(const SchedulerOutput& step, absl::Span<const SamplingRow> inputs,
                                  std::vector<SampledTokens>* results,
                                  std::vector<PromptLogprobsChunk>* prompt_logprobs,
                                  const std::function<void()>& before_sampling,
                                  std::vector<std::vector<int32_t>>* mtp_drafts) {
  if (mtp_drafts != nullptr && mtp_ == nullptr) {
    return absl::FailedPreconditionError("model runner: MTP drafts asked for without EnableMtp");
  }
  if (inputs.size() != step.scheduled.size()) {
    return absl::InternalError(absl::StrCat("model runner: ", inputs.size(), " sampling inputs for ",
                                            step.scheduled.size(), " scheduled requests"));
  }
  results->resize(step.scheduled.size());
  for (SampledTokens& r : *results) {
    r.status = absl::OkStatus();
    r.tokens.clear();
    r.num_accepted = 0;
  }
  if (step.scheduled.empty()) return absl::OkStatus();
  if (!builder_.has_value()) return absl::FailedPreconditionError("model runner: the KV cache is not allocated");

  // Prompt logprobs: the rows of an asking entry's chunk that predict a prompt token (position q
  // predicts q + 1; the last prompt token's row samples the first output instead).
  prompt_rows_.clear();
  if (prompt_logprobs != nullptr) {
    prompt_logprobs->resize(step.scheduled.size());
    int32_t offset = 0;  // the entry's first batch row
    for (size_t i = 0; i < step.scheduled.size(); ++i) {
      const ScheduledRequest& entry = step.scheduled[i];
      PromptLogprobsChunk& chunk = (*prompt_logprobs)[i];
      chunk.entries.clear();
      chunk.status = absl::OkStatus();
      const SamplingRow& in = inputs[i];
      if (in.prompt_logprobs_from > 0 && in.params != nullptr) {
        const int32_t first = std::max(in.prompt_logprobs_from, entry.start_position + 1);
        const int32_t last =
            std::min(static_cast<int32_t>(in.prompt_token_ids.size()) - 1, entry.start_position + entry.num_new_tokens);
        chunk.first_position = first;
        for (int32_t p = first; p <= last; ++p) {
          prompt_rows_.push_back(offset + p - 1 - entry.start_position);
        }
        chunk.entries.resize(static_cast<size_t>(std::max(0, last - first + 1)));
      }
      offset += entry.num_new_tokens;
    }
  }

  if (channel_ != nullptr) {
    const absl::Time start = absl::Now();
    encoder_.EncodeStep(step, prompt_rows_, &message_);
    encode_time_ += absl::Now() - start;
    if (absl::Status s = channel_->Send(message_); !s.ok()) channel_->host()->Abort(s);
  }
  const ForwardBatch& batch = builder_->Build(step, prompt_rows_);
  const size_t num_rows = batch.logits_indices.size();
  const size_t num_sample_rows = num_rows - prompt_rows_.size();
  // Always run: prefill chunks that sample nothing still write their KV. The MTP needs every
  // token's hidden state, so such steps run eagerly.
  Tensor hidden;
  absl::StatusOr<Tensor> forward =
      mtp_drafts != nullptr ? model_->ForwardWithHidden(batch, &hidden) : RunForward(batch);
  if (!forward.ok() && channel_ != nullptr) channel_->host()->Abort(forward.status());
  ASSIGN_OR_RETURN(Tensor logits, std::move(forward));
  if (before_sampling) before_sampling();
  if (mtp_drafts != nullptr) mtp_drafts->assign(step.scheduled.size(), {});
  if (num_rows == 0) {
    if (mtp_drafts != nullptr) return mtp_->Propose(step, batch, hidden, inputs, *results, mtp_drafts);
    return absl::OkStatus();
  }
  // On the device when the backend can sample there and every row is supported (device_sampling.h).
  ASSIGN_OR_RETURN(const bool sampled_on_device, SampleOnDevice(logits, step, inputs, results));
  if (!sampled_on_device || !prompt_rows_.empty()) {
    host_logits_.resize(num_rows * static_cast<size_t>(vocab_size_));
    RETURN_IF_ERROR(backend_->CopyToHostF32(logits, absl::MakeSpan(host_logits_)));
    if (!sampled_on_device) RETURN_IF_ERROR(SampleOnHost(step, inputs, results));
    if (!prompt_rows_.empty()) FillPromptLogprobs(step, inputs, num_sample_rows, prompt_logprobs);
  }
  if (mtp_drafts != nullptr) return mtp_->Propose(step, batch, hidden, inputs, *results, mtp_drafts);
  return absl::OkStatus();
}

void ModelRunner::FillPromptLogprobs(const SchedulerOutput& step, absl::Span<const SamplingRow> inputs,
                                     size_t first_row, std::vector<PromptLogprobsChunk>* prompt_logprobs) {
  size_t row = first_row;
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    PromptLogprobsChunk& chunk = (*prompt_logprobs)[i];
    const SamplingRow& in = inputs[i];
    for (size_t k = 0; k < chunk.entries.size(); ++k, ++row) {
      TokenLogprobs& e = chunk.entries[k];
      e.token_id = in.prompt_token_ids[chunk.first_position + k];
      const auto logits = absl::MakeConstSpan(host_logits_).subspan(row * vocab_size_, vocab_size_);
      if (!chunk.status.ok()) continue;
      chunk.status = sampler_->Logprobs(logits, e.token_id, std::max(0, in.params->prompt_logprobs.value_or(0)),
                                        &e.logprob, &e.top);
    }
  }
}

absl::StatusOr<bool> ModelRunner::SampleOnDevice(const Tensor& logits, const SchedulerOutput& step,
                                                 absl::Span<const SamplingRow> inputs,
                                                 std::vector<SampledTokens>* results) {
  if (backend_->name() == "cpu") return false;
  // One device row per verify position: position j sees the outputs and drafts d_1..d_j (its draw
  // counter included) and the j-th mask; the accepted prefix is decided from the sampled tokens.
  const size_t mask_words = (static_cast<size_t>(vocab_size_) + 31) / 32;
  rows_.clear();
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    const ScheduledRequest& entry = step.scheduled[i];
    if (!entry.samples) continue;
    const SamplingRow& in = inputs[i];
    if (in.params == nullptr || in.draft_token_ids.size() != static_cast<size_t>(entry.num_draft_tokens)) {
      return false;  // the host path reports it
    }
    for (int32_t j = 0; j <= entry.num_draft_tokens; ++j) {
      SamplingRow& row = rows_.emplace_back(in);
      row.output_token_ids = absl::MakeConstSpan(in.output_token_ids.data(), in.output_token_ids.size() + j);
      row.draft_token_ids = {};
      if (in.allowed_tokens != nullptr) row.allowed_tokens = in.allowed_tokens + j * mask_words;
    }
  }
  ASSIGN_OR_RETURN(bool done, moeserve::SampleOnDevice(backend_, logits, rows_, &row_results_));
  if (!done) return false;
  size_t row = 0;
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    const ScheduledRequest& entry = step.scheduled[i];
    if (!entry.samples) continue;
    SampledTokens& out = (*results)[i];
    out.tokens.clear();
    out.num_accepted = 0;
    const absl::Span<const int32_t> drafts = inputs[i].draft_token_ids;
    for (int32_t j = 0; j <= entry.num_draft_tokens; ++j) {
      out.tokens.push_back(std::move(row_results_[row + j]));
      out.status = out.tokens.back().status;
      if (!out.status.ok() || j == entry.num_draft_tokens || out.tokens.back().token_id != drafts[j]) break;
      ++out.num_accepted;
    }
    row += 1 + entry.num_draft_tokens;
  }
  return true;
}

absl::Status ModelRunner::SampleOnHost(const SchedulerOutput& step, absl::Span<const SamplingRow> inputs,
                                       std::vector<SampledTokens>* results) {
  // Entries without drafts are sampled as one batch; entries with drafts are verified alone.
  rows_.clear();
  row_entries_.clear();
  size_t row = 0;  // the entry's first logits row
  for (size_t i = 0; i < step.scheduled.size(); ++i) {
    const ScheduledRequest& entry = step.scheduled[i];
    if (!entry.samples) continue;
    const SamplingRow& in = inputs[i];
    if (in.params == nullptr) {
      return absl::InternalError(absl::StrCat("model runner: no sampling params for request ", entry.id));
    }
    const size_t k = static_cast<size_t>(entry.num_draft_tokens);
    if (in.draft_token_ids.size() != k) {
      return absl::InternalError(absl::StrCat("model runner: ", in.draft_token_ids.size(), " drafts for request ",
                                              entry.id, ", which verifies ", k));
    }
    const auto logits = absl::MakeConstSpan(host_logits_).subspan(row * vocab_size_, (k + 1) * vocab_size_);
    if (k == 0) {
      rows_.push_back(in);
      rows_.back().logits = logits;
      row_entries_.push_back(i);
    } else {
      SamplingRow verify = in;
      verify.logits = logits;
      VerifyDrafts(*sampler_, verify, &(*results)[i]);
    }
    row += k + 1;
  }
  sampler_->Sample(rows_, &row_results_);
  for (size_t r = 0; r < row_entries_.size(); ++r) {
    SampledTokens& out = (*results)[row_entries_[r]];
    out.status = row_results_[r].status;
    out.tokens.push_back(std::move(row_results_[r]));
  }
  return absl::OkStatus();
}

}  // namespace moeserve
