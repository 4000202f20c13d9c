#include "server/model/weight_loader.h"

#include "server/common/status_macros.h"

namespace moeserve {

std::vector<float> TakeRows(const std::vector<float>& m, int64_t cols, int64_t begin, int64_t count) {
  return std::vector<float>(m.begin() + begin * cols, m.begin() + (begin + count) * cols);
}

const std::string& WeightLoader::Name(const WeightSpec& spec) const {
  if (checkpoint_->Has(spec.name)) return spec.name;
  for (const std::string& alias : spec.aliases) {
    if (checkpoint_->Has(alias)) return alias;
  }
  return spec.name;
}

absl::StatusOr<std::vector<float>> WeightLoader::Host(const std::string& name, std::vector<int64_t> shape) const {
  return checkpoint_->LoadF32(name, shape);
}

absl::StatusOr<Tensor> WeightLoader::Upload(const std::vector<float>& values, std::vector<int64_t> shape) {
  ++tensors_loaded_;
  return backend_->CreateWeight(values, Shape(absl::MakeConstSpan(shape)));
}

absl::StatusOr<Tensor> WeightLoader::Load(const std::string& name, std::vector<int64_t> shape) {
  ASSIGN_OR_RETURN(std::vector<float> values, Host(name, shape));
  return Upload(values, std::move(shape));
}

absl::StatusOr<Tensor> WeightLoader::LoadOptional(const std::string& name, std::vector<int64_t> shape) {
  if (!Has(name)) return Tensor();
  return Load(name, std::move(shape));
}

absl::StatusOr<Tensor> WeightLoader::LoadConcatRows(const std::vector<std::string>& names,
                                                    const std::vector<int64_t>& rows, int64_t cols) {
  std::vector<float> all;
  int64_t total = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    ASSIGN_OR_RETURN(std::vector<float> part, Host(names[i], {rows[i], cols}));
    all.insert(all.end(), part.begin(), part.end());
    total += rows[i];
  }
  return Upload(all, {total, cols});
}

absl::StatusOr<bool> WeightLoader::HostFp8Block(const std::string& name,
                                                const std::vector<int64_t>& shape,
                                                std::vector<uint8_t>* bytes,
                                                std::vector<float>* scales) const {
  ASSIGN_OR_RETURN(const TensorInfo* info, checkpoint_->Info(name));
  const std::string scale_name = name + "_scale_inv";
  if (info->file_dtype != SafetensorsDType::kF8E4M3 || shape.size() != 2 || info->shape != shape ||
      !checkpoint_->Has(scale_name)) {
    return false;
  }
  const std::vector<int64_t> scale_shape = {(shape[0] + 127) / 128, (shape[1] + 127) / 128};
  ASSIGN_OR_RETURN(const TensorInfo* scale_info, checkpoint_->Info(scale_name));
  if (scale_info->shape != scale_shape) return false;  // another block size
  ASSIGN_OR_RETURN(absl::Span<const uint8_t> raw, checkpoint_->RawData(name));
  ASSIGN_OR_RETURN(std::vector<float> s, checkpoint_->LoadF32(scale_name, scale_shape));
  bytes->insert(bytes->end(), raw.begin(), raw.end());
  scales->insert(scales->end(), s.begin(), s.end());
  return true;
}

}  // namespace moeserve
