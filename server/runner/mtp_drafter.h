#ifndef MOESERVE_SERVER_RUNNER_MTP_DRAFTER_H_
#define MOESERVE_SERVER_RUNNER_MTP_DRAFTER_H_

// MtpDrafter: DeepSeek-V3 multi-token prediction (Model::ForwardMtp) as the drafter of
// speculative decoding, run by the model runner right after a step's verification, on the step's
// own hidden states.
//
// 1. The MTP layer's KV rows are written for every entry's verified positions p of the step (its
//    prefill chunk, or its last token and the accepted drafts), fed the main model's hidden state
//    h_p and the token after p (the next prompt token, an accepted draft, or the token just
//    sampled), so the layer's cache always holds the rows of verified tokens (rows written for a
//    chain below are overwritten by this pass in a later step before anything reads them). Only
//    the last verified row of an entry that sampled needs the layer's output; the rows before it
//    (and a prefill chunk's) go through Model::WriteMtpCache: their KV rows alone, no attention,
//    FFN or head.
// 2. For each entry that sampled, a full pass (Model::ForwardMtp) over its last verified row
//    gives draft 1; drafts 2..k chain one position at a time, each fed the previous pass's MTP
//    output row and draft. A draft position past the entry's blocks (the scheduler's lookahead
//    slots) or past max_model_len ends the entry's chain early.
// Drafts are the argmax of the MTP logits after the request's logit bias, min_tokens suppression
// and penalties (the Sampler at temperature 0 over the outputs and the drafts before it), so the
// processors apply to the draft distribution as to the target's (rejection_sampler.h).
//
// Requires external synchronization (the engine thread).

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/model/forward_batch.h"
#include "server/model/model.h"
#include "server/sampling/rejection_sampler.h"
#include "server/sampling/sampler.h"
#include "server/sampling/sampling_row.h"
#include "server/scheduler/scheduler.h"

namespace moeserve {

class MtpDrafter {
 public:
  // `model` (with an MTP layer), `backend` and `sampler` must outlive the drafter.
  MtpDrafter(Model* model, Backend* backend, Sampler* sampler, int32_t num_drafts, int32_t max_model_len);

  MtpDrafter(const MtpDrafter&) = delete;
  MtpDrafter& operator=(const MtpDrafter&) = delete;

  // `batch` is the step's forward batch and `hidden` [batch.num_tokens(), d] the main model's
  // hidden rows; inputs and results as Model Runner::Execute's (inputs must hold the prompt and
  // output spans of every entry). (*drafts)[i] gets entry i's drafts (empty for entries that did
  // not sample or failed).
  absl::Status Propose(const SchedulerOutput& step, const ForwardBatch& batch, const Tensor& hidden,
                       absl::Span<const SamplingRow> inputs, absl::Span<const SampledTokens> results,
                       std::vector<std::vector<int32_t>>* drafts);

 private:
  // Starts a pass batch with the main batch's block size and table width.
  static void BeginPass(const ForwardBatch& main, ForwardBatch* pass);
  // Adds one entry's rows to a pass batch: `tokens` at positions [first, first + n), its block
  // table row copied from main row `main_row`; logits for the last row when `want_logits`.
  static void AddRows(const ForwardBatch& main, size_t main_row, int32_t first, absl::Span<const int32_t> tokens,
                      bool want_logits, ForwardBatch* pass);
  // Gathers rows `rows` of `x` [R, d] into a new tensor.
  absl::StatusOr<Tensor> Gather(const Tensor& x, absl::Span<const int32_t> rows);
  // Greedy draft of each logits row under its entry's processing; context = outputs + drafts.
  absl::Status PickDrafts(const Tensor& logits, absl::Span<const size_t> entries, absl::Span<const SamplingRow> inputs);

  Model* const model_;
  Backend* const backend_;
  Sampler* const sampler_;
  const int32_t num_drafts_;
  const int32_t max_model_len_;
  const int32_t vocab_size_;
  ForwardBatch pass_;                           // the current MTP pass
  ForwardBatch cache_pass_;                     // the step's rows that only write the MTP cache
  std::vector<std::vector<int32_t>> contexts_;  // per entry: outputs after the step + drafts
  std::vector<int32_t> positions_;              // per entry: position of its last MTP row
  std::vector<int32_t> picked_;                 // per pass row: the chosen draft
  std::vector<float> host_logits_;
  std::vector<int32_t> scratch_;
  SampleResult sample_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_MTP_DRAFTER_H_
