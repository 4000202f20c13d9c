#include "server/model/parallel.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/model/weight_loader.h"

namespace moeserve {
namespace {

constexpr int64_t kFp8Block = 128;

// fp8 block-scaled weights split on whole scale blocks only.
absl::Status CheckFp8Boundaries(const Checkpoint& ckpt, const std::string& name, const std::vector<int64_t>& shape,
                                int dim, Range range) {
  ASSIGN_OR_RETURN(const TensorInfo* info, ckpt.Info(name));
  if (info->file_dtype != SafetensorsDType::kF8E4M3) return absl::OkStatus();
  const bool whole_blocks = range.begin % kFp8Block == 0 && (range.count % kFp8Block == 0 || range.end() == shape[dim]);
  if (!whole_blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor \"", name, "\" is fp8 with 128x128 block scales: its shard [", range.begin, ", ", range.end(),
        ") of dimension ", dim, " does not fall on 128-blocks (choose a tensor-parallel size that splits it into ",
        "multiples of 128)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view EpDispatchName(EpDispatch dispatch) {
  return dispatch == EpDispatch::kAllToAll ? "alltoall" : "allreduce";
}

absl::StatusOr<EpDispatch> ParseEpDispatch(absl::string_view name) {
  if (name == "allreduce") return EpDispatch::kAllReduce;
  if (name == "alltoall") return EpDispatch::kAllToAll;
  return absl::InvalidArgumentError(
      absl::StrCat("expert-parallel dispatch \"", name, "\" is not one of: allreduce, alltoall"));
}

absl::StatusOr<Range> ModelParallel::Share(int64_t n, absl::string_view what) const {
  const int64_t s = size();
  if (n % s != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor parallelism: ", what, " (", n, ") is not divisible by the tensor-parallel size ", s));
  }
  return Range{.begin = rank() * (n / s), .count = n / s};
}

absl::Status ModelParallel::AllReduce(const Tensor& x) const {
  return comm_ != nullptr ? comm_->AllReduce(x) : absl::OkStatus();
}

absl::StatusOr<std::vector<float>> HostSlice(const WeightLoader& loader, const std::string& name,
                                             const std::vector<int64_t>& shape, int dim, Range range) {
  RETURN_IF_ERROR(CheckFp8Boundaries(loader.checkpoint(), name, shape, dim, range));
  ASSIGN_OR_RETURN(std::vector<float> values,
                   loader.checkpoint().LoadF32Slice(name, shape, dim, range.begin, range.count));
  loader.checkpoint().DropPages(name);  // copied: the mapped pages leave the resident set
  return values;
}

absl::StatusOr<Tensor> LoadSlice(WeightLoader& loader, const std::string& name, const std::vector<int64_t>& shape,
                                 int dim, Range range) {
  if (range.begin == 0 && dim < static_cast<int>(shape.size()) && range.count == shape[dim]) {
    return loader.Load(name, shape);  // the whole tensor, as one rank loads it
  }
  ASSIGN_OR_RETURN(std::vector<float> values, HostSlice(loader, name, shape, dim, range));
  std::vector<int64_t> sliced = shape;
  sliced[dim] = range.count;
  return loader.Upload(values, std::move(sliced));
}

absl::StatusOr<bool> HostFp8BlockSlice(const WeightLoader& loader, const std::string& name,
                                       const std::vector<int64_t>& shape, int dim, Range range,
                                       std::vector<uint8_t>* bytes, std::vector<float>* scales) {
  if (shape.size() != 2 || dim < 0 || dim > 1 || range.begin < 0 || range.end() > shape[dim]) return false;
  if (range.begin % kFp8Block != 0 || (range.count % kFp8Block != 0 && range.end() != shape[dim])) return false;
  const Checkpoint& ckpt = loader.checkpoint();
  ASSIGN_OR_RETURN(const TensorInfo* info, ckpt.Info(name));
  const std::string scale_name = name + "_scale_inv";
  const int64_t rows = shape[0], cols = shape[1];
  const std::vector<int64_t> scale_shape = {(rows + kFp8Block - 1) / kFp8Block, (cols + kFp8Block - 1) / kFp8Block};
  if (info->file_dtype != SafetensorsDType::kF8E4M3 || info->shape != shape || !ckpt.Has(scale_name)) return false;
  ASSIGN_OR_RETURN(const TensorInfo* scale_info, ckpt.Info(scale_name));
  if (scale_info->shape != scale_shape) return false;  // another block size
  // Only the shard's bytes and scale blocks are read from the mapped file.
  ASSIGN_OR_RETURN(absl::Span<const uint8_t> raw, ckpt.RawData(name));
  const int64_t b0 = range.begin / kFp8Block, b1 = (range.end() + kFp8Block - 1) / kFp8Block;
  ASSIGN_OR_RETURN(std::vector<float> s, ckpt.LoadF32Slice(scale_name, scale_shape, dim, b0, b1 - b0));
  if (dim == 0) {
    bytes->insert(bytes->end(), raw.begin() + range.begin * cols, raw.begin() + range.end() * cols);
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      bytes->insert(bytes->end(), raw.begin() + r * cols + range.begin, raw.begin() + r * cols + range.end());
    }
  }
  scales->insert(scales->end(), s.begin(), s.end());
  return true;
}

absl::StatusOr<std::vector<float>> HostSlice(const WeightLoader& loader, const WeightSpec& spec, int dim, Range range) {
  return HostSlice(loader, loader.Name(spec), spec.shape, dim, range);
}

absl::StatusOr<Tensor> LoadSlice(WeightLoader& loader, const WeightSpec& spec, int dim, Range range) {
  return LoadSlice(loader, loader.Name(spec), spec.shape, dim, range);
}

}  // namespace moeserve
