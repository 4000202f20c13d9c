#include "server/runner/mtp_drafter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/runner/model_runner.h"
#include "server/sampling/vec_math.h"

namespace moeserve {
namespace {

// The token at position q of an entry's request, from its prompt and outputs; -1 when unknown.
int32_t TokenAt(const SamplingRow& in, int32_t q) {
  const int64_t p = static_cast<int64_t>(in.prompt_token_ids.size());
  if (q < p) return in.prompt_token_ids[q];
  const int64_t o = q - p;
  return o < static_cast<int64_t>(in.output_token_ids.size()) ? in.output_token_ids[o] : -1;
}

// Whether a greedy draft under these params is the plain argmax (no processor changes it).
bool PlainArgmax(const SamplingParams& p, size_t num_outputs) {
  return p.logit_bias.empty() && p.repetition_penalty == 1.0f && p.presence_penalty == 0.0f &&
         p.frequency_penalty == 0.0f && static_cast<int64_t>(num_outputs) >= p.min_tokens;
}

}  // namespace

MtpDrafter::MtpDrafter(Model* model, Backend* backend, Sampler* sampler, int32_t num_drafts, int32_t max_model_len)
    : model_(model),
      backend_(backend),
      sampler_(sampler),
      num_drafts_(num_drafts),
      max_model_len_(max_model_len),
      vocab_size_(static_cast<int32_t>(model->config().vocab_size)) {}

void MtpDrafter::BeginPass(const ForwardBatch& main, ForwardBatch* pass) {
  pass->block_size = main.block_size;
  pass->max_blocks_per_seq = main.max_blocks_per_seq;
  pass->token_ids.clear();
  pass->positions.clear();
  pass->seq_lens.clear();
  pass->block_tables.clear();
  pass->slot_mapping.clear();
  pass->logits_indices.clear();
  pass->query_start_loc.assign(1, 0);
}

void MtpDrafter::AddRows(const ForwardBatch& main, size_t main_row, int32_t first, absl::Span<const int32_t> tokens,
                         bool want_logits, ForwardBatch* pass) {
  if (tokens.empty()) return;
  const int32_t bs = pass->block_size;
  const size_t width = static_cast<size_t>(main.max_blocks_per_seq);
  const int32_t* table = main.block_tables.data() + main_row * width;
  for (size_t r = 0; r < tokens.size(); ++r) {
    const int32_t pos = first + static_cast<int32_t>(r);
    pass->token_ids.push_back(tokens[r]);
    pass->positions.push_back(pos);
    const size_t logical = static_cast<size_t>(pos / bs);
    pass->slot_mapping.push_back(logical < width && table[logical] > 0 ? table[logical] * bs + pos % bs : -1);
  }
  pass->query_start_loc.push_back(pass->query_start_loc.back() + static_cast<int32_t>(tokens.size()));
  pass->seq_lens.push_back(first + static_cast<int32_t>(tokens.size()));
  pass->block_tables.insert(pass->block_tables.end(), table, table + width);
  if (want_logits) pass->logits_indices.push_back(pass->query_start_loc.back() - 1);
}

absl::StatusOr<Tensor> MtpDrafter::Gather(const Tensor& x, absl::Span<const int32_t> rows) {
  const int64_t n = static_cast<int64_t>(rows.size());
  ASSIGN_OR_RETURN(Tensor index, backend_->Allocate(DType::kI32, {n}));
  RETURN_IF_ERROR(backend_->CopyFromHost(HostBytes(rows), index));
  ASSIGN_OR_RETURN(Tensor out, backend_->Allocate(x.dtype(), {n, x.dim(1)}));
  RETURN_IF_ERROR(backend_->GatherRows(x, index, out));
  return out;
}

absl::Status MtpDrafter::PickDrafts(const Tensor& logits, absl::Span<const size_t> entries,
                                    absl::Span<const SamplingRow> inputs) {
  const size_t v = static_cast<size_t>(vocab_size_);
  host_logits_.resize(entries.size() * v);
  RETURN_IF_ERROR(backend_->CopyToHostF32(logits, absl::MakeSpan(host_logits_)));
  picked_.assign(entries.size(), -1);
  for (size_t e = 0; e < entries.size(); ++e) {
    const SamplingRow& in = inputs[entries[e]];
    const std::vector<int32_t>& context = contexts_[entries[e]];
    const auto row = absl::MakeConstSpan(host_logits_).subspan(e * v, v);
    if (PlainArgmax(*in.params, context.size())) {
      picked_[e] = ArgMax(row);
      continue;
    }
    SamplingParams greedy = *in.params;
    greedy.temperature = 0.0f;
    greedy.logprobs.reset();
    sampler_->SampleRow(SamplingRow{.logits = row,
                                    .params = &greedy,
                                    .prompt_token_ids = in.prompt_token_ids,
                                    .output_token_ids = context,
                                    .seed = in.seed},
                        &sample_);
    if (sample_.status.ok()) picked_[e] = sample_.token_id;
  }
  return absl::OkStatus();
}

absl::Status MtpDrafter::Propose(const SchedulerOutput& step, const ForwardBatch& batch, const Tensor& hidden,
                                 absl::Span<const SamplingRow> inputs, absl::Span<const SampledTokens> results,
                                 std::vector<std::vector<int32_t>>* drafts) {
  const size_t n = step.scheduled.size();
  drafts->resize(n);
  for (std::vector<int32_t>& d : *drafts) d.clear();
  contexts_.resize(n);
  positions_.assign(n, -1);

  // The verified positions of every entry: the last one of an entry that drafts in the first
  // draft pass, the others in the cache-only pass.
  BeginPass(batch, &cache_pass_);
  BeginPass(batch, &pass_);
  std::vector<int32_t> cache_rows, draft_rows;  // their rows of `hidden`
  std::vector<size_t> drafting;                 // entries that get drafts, in pass order
  for (size_t i = 0; i < n; ++i) {
    const ScheduledRequest& e = step.scheduled[i];
    const SamplingRow& in = inputs[i];
    int32_t valid = e.num_new_tokens;
    if (e.samples) {
      if (!results[i].status.ok() || results[i].tokens.empty()) continue;  // the request fails
      valid = e.num_new_tokens - e.num_draft_tokens + results[i].num_accepted;
    }
    scratch_.clear();
    for (int32_t r = 0; r < valid; ++r) {
      int32_t next;
      if (r + 1 < valid) {
        next = e.token_ids[r + 1];
      } else if (e.samples) {
        next = results[i].tokens.back().token_id;
      } else {
        next = TokenAt(in, e.start_position + valid);  // the chunk's next prompt/output token
      }
      if (next < 0) break;
      scratch_.push_back(next);
    }
    if (scratch_.empty()) continue;
    const int32_t rows = static_cast<int32_t>(scratch_.size());
    const bool drafts = e.samples && num_drafts_ > 0;
    const int32_t cached = drafts ? rows - 1 : rows;
    AddRows(batch, i, e.start_position, absl::MakeConstSpan(scratch_).first(cached), false, &cache_pass_);
    for (int32_t r = 0; r < cached; ++r) cache_rows.push_back(batch.query_start_loc[i] + r);
    if (!drafts) continue;
    AddRows(batch, i, e.start_position + cached, absl::MakeConstSpan(scratch_).subspan(cached), true, &pass_);
    draft_rows.push_back(batch.query_start_loc[i] + cached);
    drafting.push_back(i);
    positions_[i] = e.start_position + cached;
    // The outputs after this step: those before it, the accepted drafts, the sampled token.
    contexts_[i].assign(in.output_token_ids.begin(), in.output_token_ids.end());
    const absl::Span<const int32_t> accepted = in.draft_token_ids.first(results[i].num_accepted);
    contexts_[i].insert(contexts_[i].end(), accepted.begin(), accepted.end());
    contexts_[i].push_back(results[i].tokens.back().token_id);
  }
  // The cache rows first: the draft pass's attention reads them.
  if (!cache_rows.empty()) {
    ASSIGN_OR_RETURN(Tensor prev, Gather(hidden, cache_rows));
    RETURN_IF_ERROR(model_->WriteMtpCache(cache_pass_, prev));
  }
  if (drafting.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(Tensor prev, Gather(hidden, draft_rows));
  ASSIGN_OR_RETURN(MtpOutput out, model_->ForwardMtp(pass_, prev));

  // Every draft pass has one row per drafting entry, in order: row e of out.hidden chains entry
  // drafting[e].
  for (int32_t j = 0;; ++j) {
    RETURN_IF_ERROR(PickDrafts(out.logits, drafting, inputs));
    std::vector<size_t> next_drafting;
    std::vector<int32_t> y_rows;
    BeginPass(batch, &pass_);
    for (size_t e = 0; e < drafting.size(); ++e) {
      const size_t i = drafting[e];
      if (picked_[e] < 0) continue;
      (*drafts)[i].push_back(picked_[e]);
      contexts_[i].push_back(picked_[e]);
      // The next draft's position needs a slot and a place in the context.
      const int32_t p = positions_[i] + 1;
      const ScheduledRequest& entry = step.scheduled[i];
      const int64_t covered = static_cast<int64_t>(entry.block_ids.size()) * batch.block_size;
      if (j + 1 >= num_drafts_ || p >= max_model_len_ - 1 || p >= covered) continue;
      positions_[i] = p;
      AddRows(batch, i, p, absl::MakeConstSpan(&picked_[e], 1), true, &pass_);
      y_rows.push_back(static_cast<int32_t>(e));
      next_drafting.push_back(i);
    }
    if (next_drafting.empty()) break;
    ASSIGN_OR_RETURN(Tensor chained, Gather(out.hidden, y_rows));
    ASSIGN_OR_RETURN(out, model_->ForwardMtp(pass_, chained));
    drafting = std::move(next_drafting);
  }
  return absl::OkStatus();
}

}  // namespace moeserve
