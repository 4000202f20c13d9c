#include "server/backend/tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/logging.h"

namespace moeserve {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kF8E4M3: return 1;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kU8: return 1;
  }
  return 0;
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kF8E4M3: return "f8e4m3";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kU8: return "u8";
  }
  return "?";
}

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(absl::MakeConstSpan(dims.begin(), dims.size())) {}

Shape::Shape(absl::Span<const int64_t> dims) {
  MS_CHECK(dims.size() <= kMaxRank) << "rank " << dims.size() << " > " << kMaxRank;
  rank_ = static_cast<int>(dims.size());
  for (int i = 0; i < rank_; ++i) dims_[i] = dims[i];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[i] != o.dims_[i]) return false;
  }
  return true;
}

std::string Shape::ToString() const { return absl::StrCat("[", absl::StrJoin(dims(), ", "), "]"); }

Tensor Tensor::View(Shape shape) const {
  MS_CHECK(shape.numel() == numel()) << "View " << shape.ToString() << " of " << DebugString();
  return Tensor(storage_, data_, dtype_, shape);
}

Tensor Tensor::Slice(int64_t begin, int64_t count) const {
  MS_CHECK(rank() >= 1 && begin >= 0 && count >= 0 && begin + count <= dim(0))
      << "Slice(" << begin << ", " << count << ") of " << DebugString();
  Shape s = shape_;
  s[0] = count;
  const size_t row_bytes = dim(0) == 0 ? 0 : bytes() / static_cast<size_t>(dim(0));
  return Tensor(storage_, static_cast<char*>(data_) + begin * row_bytes, dtype_, s);
}

std::string Tensor::DebugString() const { return absl::StrCat(std::string(DTypeName(dtype_)), shape_.ToString()); }

}  // namespace moeserve
