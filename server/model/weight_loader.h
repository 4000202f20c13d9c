#ifndef MOESERVE_SERVER_MODEL_WEIGHT_LOADER_H_
#define MOESERVE_SERVER_MODEL_WEIGHT_LOADER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/model/checkpoint.h"
#include "server/model/parallel.h"
#include "server/model/weight_spec.h"

namespace moeserve {

// Moves checkpoint tensors onto a backend, reshaping on the host where the model code wants a
// different layout than the file (merged gate/up, stacked experts, split projections). Errors name
// the tensor and the checkpoint directory. Not thread-safe.
//
// Weights keep the checkpoint's dtype (Backend::CreateWeightFromHost): a tensor loaded as it is
// views the mapped file (a host-memory backend uses it in place), and one reshaped on the host is
// copied once in its own dtype. Host() values (fp32) uploaded again through Upload() are narrowed
// back to weight_dtype() when that is exact, so a bf16 checkpoint gives bf16 weights either way.
// Tensors copied out of the mapping have their mapped pages dropped (Checkpoint::DropPages), so
// the load's resident memory stays near one copy of the weights.
class WeightLoader {
 public:
  WeightLoader(const Checkpoint* checkpoint, Backend* backend) : checkpoint_(checkpoint), backend_(backend) {}

  bool Has(const std::string& name) const { return checkpoint_->Has(name); }
  // The checkpoint's name for `spec`: the first of spec.name, spec.aliases it holds (spec.name when
  // it holds none, so that errors name that one).
  const std::string& Name(const WeightSpec& spec) const;
  bool Has(const WeightSpec& spec) const { return Has(Name(spec)); }
  Backend* backend() const { return backend_; }
  const Checkpoint& checkpoint() const { return *checkpoint_; }
  // How this rank's share of the model is split (parallel.h); one rank unless set.
  const ModelParallel& parallel() const { return parallel_; }
  void set_parallel(const ModelParallel& parallel) { parallel_ = parallel; }

  // Host fp32 values of `name`, checked against `shape`.
  absl::StatusOr<std::vector<float>> Host(const std::string& name, std::vector<int64_t> shape) const;
  // The 16-bit values (bits) of `name` as stored, checked against `shape`; InvalidArgument unless
  // it is stored as `dtype` (kBF16 or kF16).
  absl::StatusOr<std::vector<uint16_t>> Host16(const std::string& name, std::vector<int64_t> shape, DType dtype) const;
  // The same bits copied straight into `dst`, a backend tensor (or a slice of one) of exactly the
  // stored size: one copy from the mapped file (one upload on a device), for stacking tensors.
  absl::Status CopyInto(const std::string& name, const std::vector<int64_t>& shape, DType dtype,
                        const Tensor& dst) const;
  // kBF16 or kF16 when every floating-point tensor of rank >= 2 in the checkpoint is stored so,
  // else kF32: the dtype host-built weights (stacks, splits) are uploaded in.
  DType weight_dtype() const;

  absl::StatusOr<Tensor> Load(const std::string& name, std::vector<int64_t> shape);
  absl::StatusOr<std::vector<float>> Host(const WeightSpec& spec) const { return Host(Name(spec), spec.shape); }
  absl::StatusOr<Tensor> Load(const WeightSpec& spec) { return Load(Name(spec), spec.shape); }
  // Empty Tensor when the checkpoint lacks `name`.
  absl::StatusOr<Tensor> LoadOptional(const std::string& name, std::vector<int64_t> shape);
  // Row-wise concatenation of several [rows_i, cols] tensors into one weight.
  absl::StatusOr<Tensor> LoadConcatRows(const std::vector<std::string>& names, const std::vector<int64_t>& rows,
                                        int64_t cols);
  // The e4m3 bytes and 128×128 block scales (`<name>_scale_inv`) of a 2-D weight stored that way
  // (DeepSeek-V3), appended to *bytes / *scales; false (nothing appended) for any other storage.
  absl::StatusOr<bool> HostFp8Block(const std::string& name, const std::vector<int64_t>& shape,
                                    std::vector<uint8_t>* bytes, std::vector<float>* scales) const;
  // Uploads host values as a weight, in weight_dtype() when every value converts exactly.
  absl::StatusOr<Tensor> Upload(const std::vector<float>& values, std::vector<int64_t> shape);
  // Uploads 16-bit values of `dtype` (moved in: a host-memory backend keeps them in place).
  absl::StatusOr<Tensor> Upload16(std::vector<uint16_t> values, DType dtype, std::vector<int64_t> shape);

  int64_t tensors_loaded() const { return tensors_loaded_; }
  // Bytes of the weights made so far (Load, Upload and the like count their own; Track counts a
  // weight made on the backend directly, e.g. fp8 blocks).
  int64_t bytes_loaded() const { return bytes_loaded_; }
  void Track(const Tensor& weight) { bytes_loaded_ += static_cast<int64_t>(weight.bytes()); }

  // Tensor `name` for Backend::CreateWeightFromHost in the dtype the file stores: F32, BF16 and F16
  // tensors view the mapped file (keep_alive holds the mapping), F8_E4M3 block weights are
  // dequantized into an owned f32 buffer as Checkpoint::LoadF32 does. Shape checked as LoadF32.
  absl::StatusOr<HostWeight> Stored(const std::string& name, const std::vector<int64_t>& shape) const;

 private:
  // Stored(), and InvalidArgument unless it is stored as `dtype`.
  absl::StatusOr<HostWeight> Stored16(const std::string& name, const std::vector<int64_t>& shape, DType dtype) const;
  // `weight` counted in bytes_loaded() when made.
  absl::StatusOr<Tensor> Tracked(absl::StatusOr<Tensor> weight);

  const Checkpoint* checkpoint_;
  Backend* backend_;
  ModelParallel parallel_;
  int64_t tensors_loaded_ = 0;
  int64_t bytes_loaded_ = 0;
  mutable std::optional<DType> weight_dtype_;  // computed on first use
};

// Row block [begin, begin + count) of a row-major [rows, cols] matrix.
std::vector<float> TakeRows(const std::vector<float>& m, int64_t cols, int64_t begin, int64_t count);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_WEIGHT_LOADER_H_
