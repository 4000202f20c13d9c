// CudaBackend::SampleTokens: packs the batch's row specs, sparse edits and structured-output
// masks into one upload, runs
// cuda/sampling.cuh and reads back only the per-row results (one synchronising copy).

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cuda/sampling.cuh"
#include "server/backend/cuda/cuda_backend.h"
#include "server/backend/cuda/cuda_status.h"
#include "server/backend/op_checks.h"
#include "server/common/status_macros.h"

namespace moeserve {

absl::Status CudaBackend::SampleTokens(const Tensor& logits, const SamplingBatch& batch,
                                       std::vector<SampledToken>* out) {
  constexpr absl::string_view kOp = "SampleTokens";
  if (!logits.defined() || logits.rank() != 2) return OpError(kOp, "logits must be [n, vocab]");
  if (logits.dtype() != DType::kBF16 && logits.dtype() != DType::kF32) {
    return OpError(kOp, absl::StrCat("logits must be bf16 or f32, got ", logits.DebugString()));
  }
  const int64_t n = logits.dim(0), vocab = logits.dim(1);
  const int32_t rows = static_cast<int32_t>(batch.rows.size());
  out->assign(rows, SampledToken());
  if (rows == 0) return absl::OkStatus();
  int32_t max_top = 0;
  const int64_t mask_rows = batch.mask_words > 0 ? static_cast<int64_t>(batch.masks.size()) / batch.mask_words : 0;
  if (!batch.masks.empty() && (int64_t{batch.mask_words} * 32 < vocab ||
                               static_cast<int64_t>(batch.masks.size()) != mask_rows * batch.mask_words)) {
    return OpError(kOp, absl::StrCat("masks: ", batch.masks.size(), " words of ", batch.mask_words,
                                     " per row do not cover a vocabulary of ", vocab));
  }
  std::vector<kernels::SampleRowParams> rp(rows);
  for (int32_t r = 0; r < rows; ++r) {
    const SamplingRowSpec& s = batch.rows[r];
    if (s.logits_row < 0 || s.logits_row >= n || s.edit_begin < 0 || s.edit_begin > s.edit_end ||
        s.edit_end > static_cast<int32_t>(batch.edits.size())) {
      return OpError(kOp, absl::StrCat("row ", r, " has a bad logits row or edit range"));
    }
    if (s.mask_row < -1 || s.mask_row >= mask_rows) {
      return OpError(kOp, absl::StrCat("row ", r, " has mask row ", s.mask_row, " of ", mask_rows));
    }
    kernels::SampleRowParams& k = rp[r];
    k.logits_row = s.logits_row;
    k.greedy = s.greedy ? 1 : 0;
    k.temperature = s.temperature;
    k.top_k = s.top_k;
    k.top_p = s.top_p;
    k.min_p = s.min_p;
    k.repetition = s.repetition;
    k.presence = s.presence;
    k.frequency = s.frequency;
    k.seed_lo = static_cast<uint32_t>(s.seed);
    k.seed_hi = static_cast<uint32_t>(s.seed >> 32);
    k.step_lo = static_cast<uint32_t>(s.step);
    k.step_hi = static_cast<uint32_t>(s.step >> 32);
    k.edit_begin = s.edit_begin;
    k.edit_end = s.edit_end;
    k.num_top_logprobs = s.num_top_logprobs;
    k.mask_row = s.mask_row;
    max_top = std::max(max_top, s.num_top_logprobs);
  }
  std::vector<kernels::SampleEdit> edits(batch.edits.size());
  for (size_t i = 0; i < edits.size(); ++i) {
    const SamplingEdit& e = batch.edits[i];
    if (e.id < 0 || e.id >= vocab) return OpError(kOp, absl::StrCat("edit id ", e.id, " is outside the vocabulary"));
    edits[i] = {e.id, e.bias, (e.suppress ? kernels::kEditSuppress : 0) | (e.repetition ? kernels::kEditRepetition : 0),
                e.count};
  }
  // One staging buffer: rows, then edits, then masks (all 4-byte aligned).
  const size_t rows_bytes = rp.size() * sizeof(kernels::SampleRowParams);
  const size_t edits_bytes = edits.size() * sizeof(kernels::SampleEdit);
  const size_t masks_bytes = batch.masks.size() * sizeof(uint32_t);
  std::vector<uint8_t> staging(rows_bytes + edits_bytes + masks_bytes);
  std::memcpy(staging.data(), rp.data(), rows_bytes);
  if (edits_bytes > 0) std::memcpy(staging.data() + rows_bytes, edits.data(), edits_bytes);
  if (masks_bytes > 0) std::memcpy(staging.data() + rows_bytes + edits_bytes, batch.masks.data(), masks_bytes);
  ASSIGN_OR_RETURN(Tensor params, Allocate(DType::kU8, {static_cast<int64_t>(staging.size())}));
  RETURN_IF_ERROR(CopyFromHost(staging, params));
  ASSIGN_OR_RETURN(Tensor scratch, Allocate(DType::kF32, {rows, vocab}));
  // Results: SampleOut [rows], then top ids [rows, max_top], then top logprobs [rows, max_top].
  const size_t out_bytes = rows * sizeof(kernels::SampleOut) + 2 * size_t(rows) * max_top * 4;
  ASSIGN_OR_RETURN(Tensor results, Allocate(DType::kU8, {static_cast<int64_t>(out_bytes)}));
  uint8_t* base = static_cast<uint8_t*>(results.data());

  kernels::SampleParams p;
  p.logits = logits.data();
  p.logits_bf16 = logits.dtype() == DType::kBF16;
  p.vocab = vocab;
  p.num_rows = rows;
  p.rows = reinterpret_cast<const kernels::SampleRowParams*>(params.data());
  p.edits = reinterpret_cast<const kernels::SampleEdit*>(static_cast<uint8_t*>(params.data()) + rows_bytes);
  if (masks_bytes > 0) {
    p.masks = reinterpret_cast<const uint32_t*>(static_cast<uint8_t*>(params.data()) + rows_bytes + edits_bytes);
    p.mask_words = batch.mask_words;
  }
  p.scratch = static_cast<float*>(scratch.data());
  p.out = reinterpret_cast<kernels::SampleOut*>(base);
  p.max_top = max_top;
  p.top_ids = reinterpret_cast<int32_t*>(base + rows * sizeof(kernels::SampleOut));
  p.top_logprobs = reinterpret_cast<float*>(base + rows * sizeof(kernels::SampleOut) + size_t(rows) * max_top * 4);
  CUDA_RETURN_IF_ERROR(kernels::LaunchSample(p, stream_), "SampleTokens: launch");

  std::vector<uint8_t> host(out_bytes);
  RETURN_IF_ERROR(CopyToHost(results, absl::MakeSpan(host)));
  const auto* so = reinterpret_cast<const kernels::SampleOut*>(host.data());
  const auto* ids = reinterpret_cast<const int32_t*>(host.data() + rows * sizeof(kernels::SampleOut));
  const auto* lps =
      reinterpret_cast<const float*>(host.data() + rows * sizeof(kernels::SampleOut) + size_t(rows) * max_top * 4);
  for (int32_t r = 0; r < rows; ++r) {
    SampledToken& t = (*out)[r];
    t.token = so[r].token;
    t.status = so[r].status;
    t.logprob = so[r].logprob;
    for (int32_t j = 0; j < so[r].num_top; ++j) t.top.emplace_back(ids[r * max_top + j], lps[r * max_top + j]);
  }
  return absl::OkStatus();
}

}  // namespace moeserve
