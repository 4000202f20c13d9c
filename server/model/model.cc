#include "server/model/model.h"

#include <new>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/architecture.h"
#include "server/model/checkpoint.h"

namespace moeserve {

absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& model_dir, Backend* backend,
                                                 const LoadModelOptions& options) {
  const ArchitectureRegistry& architectures =
      options.architectures != nullptr ? *options.architectures : BuiltinArchitectures();
  ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir, architectures));
  int64_t max_len = options.max_model_len > 0 ? options.max_model_len : config.max_position_embeddings;
  if (max_len <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(model_dir, ": max_model_len must be positive"));
  }
  CheckpointOptions checkpoint_options;
  if (config.fp8_block_rows > 0) {
    checkpoint_options.fp8_block_rows = config.fp8_block_rows;
    checkpoint_options.fp8_block_cols = config.fp8_block_cols;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(model_dir, checkpoint_options));
  const Architecture* architecture = architectures.Find(config.architecture);
  if (options.load_mtp && !architecture->Tensors(config).mtp.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        model_dir, ": --speculative-method mtp needs a multi-token-prediction layer, and this ", config.architecture,
        " declares none (num_nextn_predict_layers is ", config.num_nextn_predict_layers, ")"));
  }
  WeightLoader loader(checkpoint.get(), backend);
  loader.set_parallel(options.parallel);
  // Sizes are bounded when parsed (config_limits.h), but a large model or context can still
  // exceed this machine's memory: an error with the numbers, not an abort.
  try {
    return architecture->Load(config, loader, max_len, options.load_mtp);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        model_dir, ": out of host memory loading the model (", config.num_hidden_layers, " layers, hidden_size ",
        config.hidden_size, ", vocab_size ", config.vocab_size, ", a rotary table for max_model_len ", max_len,
        "); a smaller --max-model-len may help, or a machine with more memory"));
  }
}

}  // namespace moeserve
