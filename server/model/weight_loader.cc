#include "server/model/weight_loader.h"

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "server/common/numeric.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

// A HostWeight over a buffer it owns.
template <class V>
HostWeight Owned(std::vector<V> values, DType dtype, std::vector<int64_t> shape) {
  auto owned = std::make_shared<std::vector<V>>(std::move(values));
  HostWeight w;
  w.dtype = dtype;
  w.shape = Shape(absl::MakeConstSpan(shape));
  w.bytes = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(owned->data()), owned->size() * sizeof(V));
  w.keep_alive = std::move(owned);
  return w;
}

// `values` as 16-bit `dtype` bits when every one converts exactly.
std::optional<std::vector<uint16_t>> NarrowExactly(const std::vector<float>& values, DType dtype) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    bits[i] = dtype == DType::kBF16 ? FloatToBf16(values[i]) : FloatToFp16(values[i]);
    const float back = dtype == DType::kBF16 ? Bf16ToFloat(bits[i]) : Fp16ToFloat(bits[i]);
    if (std::memcmp(&back, &values[i], sizeof(float)) != 0) return std::nullopt;
  }
  return bits;
}

}  // namespace

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

absl::StatusOr<HostWeight> WeightLoader::Stored(const std::string& name, const std::vector<int64_t>& shape) const {
  ASSIGN_OR_RETURN(const TensorInfo* info, checkpoint_->Info(name));
  const std::optional<DType> dtype = info->dtype();
  if (info->shape == shape && dtype && (*dtype == DType::kF32 || *dtype == DType::kBF16 || *dtype == DType::kF16)) {
    HostWeight w;
    w.dtype = *dtype;
    w.shape = Shape(absl::MakeConstSpan(shape));
    ASSIGN_OR_RETURN(w.bytes, checkpoint_->RawData(name));
    w.keep_alive = checkpoint_->Mapping(name);
    return w;
  }
  // Other dtypes (fp8 blocks) and shape errors: LoadF32 converts or says why.
  ASSIGN_OR_RETURN(std::vector<float> values, checkpoint_->LoadF32(name, shape));
  return Owned(std::move(values), DType::kF32, shape);
}

absl::StatusOr<std::vector<float>> WeightLoader::Host(const std::string& name, std::vector<int64_t> shape) const {
  ASSIGN_OR_RETURN(std::vector<float> values, checkpoint_->LoadF32(name, shape));
  checkpoint_->DropPages(name);
  return values;
}

absl::StatusOr<HostWeight> WeightLoader::Stored16(const std::string& name, const std::vector<int64_t>& shape,
                                                  DType dtype) const {
  ASSIGN_OR_RETURN(HostWeight w, Stored(name, shape));
  if (w.dtype != dtype) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" in ", checkpoint_->dir(), " is ",
                                                   std::string(DTypeName(w.dtype)), ", expected ",
                                                   std::string(DTypeName(dtype))));
  }
  return w;
}

absl::StatusOr<std::vector<uint16_t>> WeightLoader::Host16(const std::string& name, std::vector<int64_t> shape,
                                                           DType dtype) const {
  ASSIGN_OR_RETURN(HostWeight w, Stored16(name, shape, dtype));
  std::vector<uint16_t> bits(w.bytes.size() / 2);
  if (!bits.empty()) std::memcpy(bits.data(), w.bytes.data(), w.bytes.size());
  checkpoint_->DropPages(name);
  return bits;
}

absl::Status WeightLoader::CopyInto(const std::string& name, const std::vector<int64_t>& shape, DType dtype,
                                    const Tensor& dst) const {
  ASSIGN_OR_RETURN(HostWeight w, Stored16(name, shape, dtype));
  if (dst.dtype() != dtype || w.bytes.size() != dst.bytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", name, "\" (", w.bytes.size(), " bytes) does not fit its slot ", dst.DebugString()));
  }
  RETURN_IF_ERROR(backend_->CopyFromHost(w.bytes, dst));
  checkpoint_->DropPages(name);
  return absl::OkStatus();
}

DType WeightLoader::weight_dtype() const {
  if (!weight_dtype_) {
    std::optional<DType> common;
    bool mixed = false;
    for (const std::string& name : checkpoint_->TensorNames()) {
      const absl::StatusOr<const TensorInfo*> info = checkpoint_->Info(name);
      if (!info.ok() || (*info)->shape.size() < 2) continue;
      const std::optional<DType> d = (*info)->dtype();
      if (!d || (*d != DType::kF32 && *d != DType::kBF16 && *d != DType::kF16 && *d != DType::kF8E4M3)) {
        continue;
      }
      if (common && *common != *d) mixed = true;
      common = d;
    }
    weight_dtype_ = (!mixed && common && (*common == DType::kBF16 || *common == DType::kF16)) ? *common : DType::kF32;
  }
  return *weight_dtype_;
}

absl::StatusOr<Tensor> WeightLoader::Upload(const std::vector<float>& values, std::vector<int64_t> shape) {
  const DType dtype = weight_dtype();
  if (dtype != DType::kF32 && shape.size() >= 2) {
    if (std::optional<std::vector<uint16_t>> bits = NarrowExactly(values, dtype)) {
      return Upload16(std::move(*bits), dtype, std::move(shape));
    }
  }
  ++tensors_loaded_;
  return Tracked(backend_->CreateWeight(values, Shape(absl::MakeConstSpan(shape))));
}

absl::StatusOr<Tensor> WeightLoader::Upload16(std::vector<uint16_t> values, DType dtype, std::vector<int64_t> shape) {
  ++tensors_loaded_;
  return Tracked(backend_->CreateWeightFromHost(Owned(std::move(values), dtype, std::move(shape))));
}

absl::StatusOr<Tensor> WeightLoader::Load(const std::string& name, std::vector<int64_t> shape) {
  ASSIGN_OR_RETURN(HostWeight w, Stored(name, shape));
  ++tensors_loaded_;
  return Tracked(backend_->CreateWeightFromHost(w));
}

absl::StatusOr<Tensor> WeightLoader::Tracked(absl::StatusOr<Tensor> weight) {
  if (weight.ok()) Track(*weight);
  return weight;
}

absl::StatusOr<Tensor> WeightLoader::LoadOptional(const std::string& name, std::vector<int64_t> shape) {
  if (!Has(name)) return Tensor();
  return Load(name, std::move(shape));
}

absl::StatusOr<Tensor> WeightLoader::LoadConcatRows(const std::vector<std::string>& names,
                                                    const std::vector<int64_t>& rows, int64_t cols) {
  std::vector<HostWeight> parts;
  int64_t total = 0;
  bool same = true;
  for (size_t i = 0; i < names.size(); ++i) {
    ASSIGN_OR_RETURN(HostWeight w, Stored(names[i], {rows[i], cols}));
    same = same && w.dtype == (parts.empty() ? w.dtype : parts.front().dtype);
    parts.push_back(std::move(w));
    total += rows[i];
  }
  if (!same || parts.empty()) {
    std::vector<float> all;
    for (size_t i = 0; i < names.size(); ++i) {
      ASSIGN_OR_RETURN(std::vector<float> part, Host(names[i], {rows[i], cols}));
      all.insert(all.end(), part.begin(), part.end());
    }
    return Upload(all, {total, cols});
  }
  // One copy in the stored dtype.
  std::vector<uint8_t> bytes;
  size_t size = 0;
  for (const HostWeight& w : parts) size += w.bytes.size();
  bytes.reserve(size);
  for (size_t i = 0; i < parts.size(); ++i) {
    bytes.insert(bytes.end(), parts[i].bytes.begin(), parts[i].bytes.end());
    checkpoint_->DropPages(names[i]);
  }
  const DType dtype = parts.front().dtype;
  ++tensors_loaded_;
  return Tracked(backend_->CreateWeightFromHost(Owned(std::move(bytes), dtype, {total, cols})));
}

absl::StatusOr<bool> WeightLoader::HostFp8Block(const std::string& name, const std::vector<int64_t>& shape,
                                                std::vector<uint8_t>* bytes, std::vector<float>* scales) const {
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
