#ifndef MOESERVE_SERVER_MODEL_ARCHITECTURE_H_
#define MOESERVE_SERVER_MODEL_ARCHITECTURE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/config.h"
#include "server/model/config_fields.h"
#include "server/model/decoder_tensors.h"
#include "server/model/model.h"
#include "server/model/weight_loader.h"

namespace moeserve {

// One model family as config.json's "architectures"[0] names it, e.g. "Qwen3ForCausalLM":
// everything moeserve knows about it sits in one file under server/model/arch/:
//   - ParseConfig: the family's own config.json fields and quirks (routing function, attention
//     bias, MoE layer pattern, rope variant, MLA sizes) into the shared ModelConfig vocabulary;
//   - Tensors: the checkpoint's tensor names and shapes, which loading reads and make-model writes;
//   - Load: the block structure (by default the pre-norm decoder over Tensors, decoder_model.h).
// Stateless and immutable: safe for concurrent use.
class Architecture {
 public:
  virtual ~Architecture() = default;

  virtual std::string_view name() const = 0;

  // Reads the family's fields into `config`, whose common fields (sizes, rope, eos, quantisation:
  // config.cc) are already parsed; sets the attention geometry (rotary_dim, attention_scale,
  // rope_style; defaults: head_dim, head_dim^-0.5, rotate-half) and, for MoE families, the experts,
  // routing and moe_layers. Errors name the field (ConfigFields).
  virtual absl::Status ParseConfig(const ConfigFields& fields, ModelConfig& config) const = 0;

  // Every tensor of a checkpoint of `config`, as published.
  virtual DecoderTensors Tensors(const ModelConfig& config) const = 0;

  // The model over `loader`'s checkpoint; positions up to max_model_len; with `load_mtp` also
  // the multi-token-prediction module of Tensors(config).mtp (the caller checks it has one).
  // Default: DecoderModel over Tensors(config).
  virtual absl::StatusOr<std::unique_ptr<Model>> Load(const ModelConfig& config, WeightLoader& loader,
                                                      int64_t max_model_len, bool load_mtp) const;
};

// The architectures a loader knows, by name. Register during setup, then use read-only (safe for
// concurrent reads).
class ArchitectureRegistry {
 public:
  ArchitectureRegistry() = default;
  ArchitectureRegistry(ArchitectureRegistry&&) = default;
  ArchitectureRegistry& operator=(ArchitectureRegistry&&) = default;

  // A registry holding every built-in family (architectures.cc).
  static ArchitectureRegistry WithBuiltins();

  // REQUIRES: no architecture of the same name is registered.
  void Register(std::unique_ptr<Architecture> architecture);
  const Architecture* Find(std::string_view name) const;  // nullptr when unknown
  std::vector<std::string> Names() const;                 // in registration order

 private:
  std::vector<std::unique_ptr<Architecture>> architectures_;
};

// The built-in families, built once (immutable).
const ArchitectureRegistry& BuiltinArchitectures();

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_ARCHITECTURE_H_
