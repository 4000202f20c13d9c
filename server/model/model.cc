#include "server/model/model.h"

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
  WeightLoader loader(checkpoint.get(), backend);
  return architectures.Find(config.architecture)->Load(config, loader, max_len);
}

}  // namespace moeserve
