#include "server/cli/single_sequence.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

int32_t PickToken(const std::vector<float>& logits, float temperature, std::mt19937_64& rng) {
  if (temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  std::vector<double> probs(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) probs[i] = std::exp((logits[i] - max_logit) / temperature);
  std::discrete_distribution<int32_t> dist(probs.begin(), probs.end());
  return dist(rng);
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> GenerateSingleSequence(Model& model, Backend& backend,
                                                            absl::Span<const int32_t> prompt,
                                                            const SingleSequenceOptions& options) {
  if (prompt.empty()) return absl::InvalidArgumentError("generate: the prompt has no tokens");
  if (options.max_tokens < 0) return absl::InvalidArgumentError("generate: max_tokens must be >= 0");
  const int64_t max_len = model.config().max_position_embeddings;
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_tokens;
  if (static_cast<int64_t>(prompt.size()) >= max_len) {
    return absl::InvalidArgumentError(absl::StrCat("generate: the prompt has ", prompt.size(),
                                                   " tokens; the model's context is ", max_len));
  }
  const int32_t bs = options.block_size;
  const int32_t num_blocks = static_cast<int32_t>((std::min(total, max_len) + bs - 1) / bs);
  if (model.num_kv_blocks() < num_blocks) RETURN_IF_ERROR(model.AllocateKvCache(num_blocks, bs));
  std::vector<int32_t> blocks(num_blocks);
  std::iota(blocks.begin(), blocks.end(), 0);

  std::mt19937_64 rng(options.seed);
  std::vector<int32_t> out;
  std::vector<float> logits(static_cast<size_t>(model.config().vocab_size));
  std::vector<int32_t> feed(prompt.begin(), prompt.end());
  int32_t cached = 0;
  while (static_cast<int32_t>(out.size()) < options.max_tokens && cached + static_cast<int64_t>(feed.size()) <= max_len) {
    ForwardBatch batch{.block_size = bs};
    batch.AddSequence(feed, cached, blocks, /*want_logits=*/true);
    ASSIGN_OR_RETURN(Tensor device_logits, model.Forward(batch));
    RETURN_IF_ERROR(backend.CopyToHostF32(device_logits, absl::MakeSpan(logits)));
    cached += static_cast<int32_t>(feed.size());
    const int32_t token = PickToken(logits, options.temperature, rng);
    out.push_back(token);
    if (options.on_token) options.on_token(token);
    if (std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), token) !=
        options.stop_token_ids.end()) {
      break;
    }
    feed.assign(1, token);
  }
  return out;
}

}  // namespace moeserve
