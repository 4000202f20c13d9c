#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/model/arch/families.h"
#include "server/model/architecture.h"
#include "server/model/decoder_model.h"

namespace moeserve {

ArchitectureRegistry ArchitectureRegistry::WithBuiltins() {
  ArchitectureRegistry r;
  r.Register(NewLlamaArchitecture());
  r.Register(NewQwen2Architecture());
  r.Register(NewQwen3Architecture());
  r.Register(NewQwen3MoeArchitecture());
  r.Register(NewMixtralArchitecture());
  r.Register(NewDeepseekV2Architecture());
  r.Register(NewDeepseekV3Architecture());
  return r;
}

const ArchitectureRegistry& BuiltinArchitectures() {
  static const ArchitectureRegistry* const kBuiltins = new ArchitectureRegistry(ArchitectureRegistry::WithBuiltins());
  return *kBuiltins;
}

void ArchitectureRegistry::Register(std::unique_ptr<Architecture> architecture) {
  MS_CHECK(Find(architecture->name()) == nullptr) << "architecture registered twice: " << architecture->name();
  architectures_.push_back(std::move(architecture));
}

const Architecture* ArchitectureRegistry::Find(std::string_view name) const {
  for (const auto& a : architectures_) {
    if (a->name() == name) return a.get();
  }
  return nullptr;
}

std::vector<std::string> ArchitectureRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& a : architectures_) names.emplace_back(a->name());
  return names;
}

absl::StatusOr<std::unique_ptr<Model>> Architecture::Load(const ModelConfig& config, WeightLoader& loader,
                                                          int64_t max_model_len, bool load_mtp) const {
  DecoderTensors tensors = Tensors(config);
  if (!load_mtp) tensors.mtp.reset();
  ASSIGN_OR_RETURN(std::unique_ptr<DecoderModel> model, DecoderModel::Load(config, tensors, loader, max_model_len));
  return model;
}

}  // namespace moeserve
