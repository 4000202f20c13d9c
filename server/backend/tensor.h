#ifndef MOESERVE_SERVER_BACKEND_TENSOR_H_
#define MOESERVE_SERVER_BACKEND_TENSOR_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/types/span.h"

namespace moeserve {

enum class DType : uint8_t { kF32, kBF16, kF16, kF8E4M3, kI32, kI64, kU8 };

size_t DTypeSize(DType dtype);
std::string_view DTypeName(DType dtype);

// Up to four dimensions, row-major.
class Shape {
 public:
  static constexpr int kMaxRank = 4;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(absl::Span<const int64_t> dims);

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  int64_t numel() const;
  absl::Span<const int64_t> dims() const { return {dims_.data(), static_cast<size_t>(rank_)}; }
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string ToString() const;  // "[2, 3]"

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// A typed, contiguous, row-major view of memory that lives on a backend's device. Copies are cheap
// and share the underlying allocation (reference-counted): the memory is released through the
// backend that allocated it when the last view is gone. A default-constructed Tensor is empty
// (`!defined()`), which ops accept where an input is optional.
//
// Thread safety: a Tensor is a value; the memory it views is not synchronised.
class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<void> storage, void* data, DType dtype, Shape shape)
      : storage_(std::move(storage)), data_(data), dtype_(dtype), shape_(shape) {}

  bool defined() const { return data_ != nullptr || shape_.rank() > 0; }
  void* data() const { return data_; }
  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data_);
  }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + shape_.rank() : i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }

  // Same memory, another shape with the same number of elements.
  // REQUIRES: shape.numel() == numel().
  Tensor View(Shape shape) const;
  // Rows [begin, begin + count) along dimension 0.
  // REQUIRES: 0 <= begin, begin + count <= dim(0).
  Tensor Slice(int64_t begin, int64_t count) const;

  std::string DebugString() const;  // "f32[2, 3]"

 private:
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  Shape shape_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_TENSOR_H_
