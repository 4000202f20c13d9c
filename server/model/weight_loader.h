#ifndef MOESERVE_SERVER_MODEL_WEIGHT_LOADER_H_
#define MOESERVE_SERVER_MODEL_WEIGHT_LOADER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/model/checkpoint.h"
#include "server/model/weight_spec.h"

namespace moeserve {

// Moves checkpoint tensors onto a backend, reshaping on the host where the model code wants a
// different layout than the file (merged gate/up, stacked experts, split projections). Errors name
// the tensor and the checkpoint directory. Not thread-safe.
class WeightLoader {
 public:
  WeightLoader(const Checkpoint* checkpoint, Backend* backend) : checkpoint_(checkpoint), backend_(backend) {}

  bool Has(const std::string& name) const { return checkpoint_->Has(name); }
  // The checkpoint's name for `spec`: the first of spec.name, spec.aliases it holds (spec.name when
  // it holds none, so that errors name that one).
  const std::string& Name(const WeightSpec& spec) const;
  bool Has(const WeightSpec& spec) const { return Has(Name(spec)); }
  Backend* backend() const { return backend_; }

  // Host fp32 values of `name`, checked against `shape`.
  absl::StatusOr<std::vector<float>> Host(const std::string& name, std::vector<int64_t> shape) const;

  absl::StatusOr<Tensor> Load(const std::string& name, std::vector<int64_t> shape);
  absl::StatusOr<std::vector<float>> Host(const WeightSpec& spec) const { return Host(Name(spec), spec.shape); }
  absl::StatusOr<Tensor> Load(const WeightSpec& spec) { return Load(Name(spec), spec.shape); }
  // Empty Tensor when the checkpoint lacks `name`.
  absl::StatusOr<Tensor> LoadOptional(const std::string& name, std::vector<int64_t> shape);
  // Row-wise concatenation of several [rows_i, cols] tensors into one weight.
  absl::StatusOr<Tensor> LoadConcatRows(const std::vector<std::string>& names,
                                        const std::vector<int64_t>& rows, int64_t cols);
  // The e4m3 bytes and 128×128 block scales (`<name>_scale_inv`) of a 2-D weight stored that way
  // (DeepSeek-V3), appended to *bytes / *scales; false (nothing appended) for any other storage.
  absl::StatusOr<bool> HostFp8Block(const std::string& name, const std::vector<int64_t>& shape,
                                    std::vector<uint8_t>* bytes, std::vector<float>* scales) const;
  // Uploads host values as a weight.
  absl::StatusOr<Tensor> Upload(const std::vector<float>& values, std::vector<int64_t> shape);

  int64_t tensors_loaded() const { return tensors_loaded_; }

 private:
  const Checkpoint* checkpoint_;
  Backend* backend_;
  int64_t tensors_loaded_ = 0;
};

// Row block [begin, begin + count) of a row-major [rows, cols] matrix.
std::vector<float> TakeRows(const std::vector<float>& m, int64_t cols, int64_t begin, int64_t count);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_WEIGHT_LOADER_H_
