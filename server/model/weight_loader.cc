#include "server/model/weight_loader.h"

#include "server/common/status_macros.h"

namespace moeserve {

std::vector<float> TakeRows(const std::vector<float>& m, int64_t cols, int64_t begin, int64_t count) {
  return std::vector<float>(m.begin() + begin * cols, m.begin() + (begin + count) * cols);
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

}  // namespace moeserve
