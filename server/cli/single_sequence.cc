#include "server/cli/single_sequence.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/sampling/sampler.h"

namespace moeserve {

absl::StatusOr<std::vector<int32_t>> GenerateSingleSequence(Model& model, Backend& backend,
                                                            absl::Span<const int32_t> prompt,
                                                            const SingleSequenceOptions& options) {
  if (prompt.empty()) return absl::InvalidArgumentError("generate: the prompt has no tokens");
  const SamplingParams& params = options.sampling;
  const int32_t vocab = static_cast<int32_t>(model.config().vocab_size);
  RETURN_IF_ERROR(Validate(params, vocab));
  const int64_t max_len = model.config().max_position_embeddings;
  const int64_t total = static_cast<int64_t>(prompt.size()) + params.max_tokens;
  if (static_cast<int64_t>(prompt.size()) >= max_len) {
    return absl::InvalidArgumentError(absl::StrCat("generate: the prompt has ", prompt.size(),
                                                   " tokens; the model's context is ", max_len));
  }
  const int32_t bs = options.block_size;
  const int32_t num_blocks = static_cast<int32_t>((std::min(total, max_len) + bs - 1) / bs);
  if (model.num_kv_blocks() < num_blocks) RETURN_IF_ERROR(model.AllocateKvCache(num_blocks, bs));
  std::vector<int32_t> blocks(num_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);

  Sampler sampler({.vocab_size = vocab, .eos_token_ids = options.eos_token_ids});
  const uint64_t seed = sampler.RequestSeed(params);
  std::vector<int32_t> stop_ids = params.stop_token_ids;
  if (!params.ignore_eos) stop_ids.insert(stop_ids.end(), options.eos_token_ids.begin(), options.eos_token_ids.end());
  std::vector<int32_t> out;
  std::vector<float> logits(static_cast<size_t>(vocab));
  SampleResult result;
  std::vector<int32_t> feed(prompt.begin(), prompt.end());
  int32_t cached = 0;
  while (static_cast<int32_t>(out.size()) < params.max_tokens && cached + static_cast<int64_t>(feed.size()) <= max_len) {
    ForwardBatch batch{.block_size = bs};
    batch.AddSequence(feed, cached, blocks, /*want_logits=*/true);
    ASSIGN_OR_RETURN(Tensor device_logits, model.Forward(batch));
    RETURN_IF_ERROR(backend.CopyToHostF32(device_logits, absl::MakeSpan(logits)));
    cached += static_cast<int32_t>(feed.size());
    sampler.SampleRow({.logits = logits, .params = &params, .prompt_token_ids = prompt,
                       .output_token_ids = out, .seed = seed},
                      &result);
    RETURN_IF_ERROR(result.status);
    const int32_t token = result.token_id;
    out.push_back(token);
    if (options.on_token) options.on_token(token);
    if (std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end() &&
        static_cast<int32_t>(out.size()) >= params.min_tokens) {
      break;
    }
    feed.assign(1, token);
  }
  return out;
}

}  // namespace moeserve
