#include "server/backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/backend/cpu/cpu_internal.h"
#include "server/backend/op_checks.h"
#include "server/common/numeric.h"
#include "server/common/status_macros.h"

namespace moeserve {

CpuBackend::CpuBackend(int num_threads) : CpuBackend(CpuBackendOptions{.num_threads = num_threads}) {}

CpuBackend::CpuBackend(const CpuBackendOptions& options)
    : options_(options), pool_(options.num_threads), allocator_(cpu::HostAllocator::Create(options.max_cached_bytes)) {}

CpuBackend::~CpuBackend() = default;

absl::StatusOr<Tensor> CpuBackend::Allocate(DType dtype, Shape shape) {
  for (int64_t d : shape.dims()) {
    if (d < 0) return cpu::OpError("Allocate", absl::StrCat("negative shape ", shape.ToString()));
  }
  // Never zero bytes, so that every allocated tensor has a non-null data pointer.
  const size_t bytes = static_cast<size_t>(shape.numel()) * DTypeSize(dtype);
  std::shared_ptr<void> storage = allocator_->Allocate(bytes);
  if (storage == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Allocate: out of host memory for ", cpu::DTypeStr(dtype), shape.ToString()));
  }
  void* p = storage.get();
  return Tensor(std::move(storage), p, dtype, shape);
}

absl::StatusOr<Tensor> CpuBackend::CreateWeight(absl::Span<const float> values, Shape shape) {
  if (static_cast<int64_t>(values.size()) != shape.numel()) {
    return cpu::OpError("CreateWeight", absl::StrCat(values.size(), " values for shape ", shape.ToString()));
  }
  auto t = Allocate(DType::kF32, shape);
  if (!t.ok()) return t.status();
  if (!values.empty()) std::memcpy(t->data(), values.data(), values.size() * sizeof(float));
  return t;
}

absl::StatusOr<Tensor> CpuBackend::CreateWeightFromHost(const HostWeight& w) {
  RETURN_IF_ERROR(CheckHostWeight("CreateWeightFromHost", w));
  const bool keep_16bit = w.dtype != DType::kF32 && w.shape.rank() >= 2 && !options_.f32_weights;
  if (!keep_16bit && w.dtype != DType::kF32) return CreateWeight(HostWeightToF32(w), w.shape);
  const size_t align = DTypeSize(w.dtype);
  if (w.keep_alive != nullptr && reinterpret_cast<uintptr_t>(w.bytes.data()) % align == 0) {
    // In place: the tensor shares ownership of whatever keeps the bytes alive.
    std::shared_ptr<void> storage = std::const_pointer_cast<void>(w.keep_alive);
    return Tensor(std::move(storage), const_cast<uint8_t*>(w.bytes.data()), w.dtype, w.shape);
  }
  ASSIGN_OR_RETURN(Tensor t, Allocate(w.dtype, w.shape));
  if (!w.bytes.empty()) std::memcpy(t.data(), w.bytes.data(), w.bytes.size());
  return t;
}

absl::StatusOr<Tensor> CpuBackend::CreateFp8BlockWeight(absl::Span<const uint8_t> bytes, absl::Span<const float> scales,
                                                        Shape shape) {
  if (auto mats = CheckFp8BlockWeight(bytes, scales, shape); !mats.ok()) return mats.status();
  return CreateWeight(DequantizeFp8BlockWeight(bytes, scales, shape), shape);
}

absl::Status CpuBackend::CopyFromHost(absl::Span<const uint8_t> bytes, const Tensor& dst) {
  if (auto s = CheckHostCopy("CopyFromHost", dst, bytes.size()); !s.ok()) return s;
  if (!bytes.empty()) std::memcpy(dst.data(), bytes.data(), bytes.size());
  return absl::OkStatus();
}

absl::Status CpuBackend::CopyToHost(const Tensor& src, absl::Span<uint8_t> bytes) {
  if (auto s = CheckHostCopy("CopyToHost", src, bytes.size()); !s.ok()) return s;
  if (!bytes.empty()) std::memcpy(bytes.data(), src.data(), bytes.size());
  return absl::OkStatus();
}

absl::Status CpuBackend::CopyToHostF32(const Tensor& src, absl::Span<float> out) {
  constexpr absl::string_view kOp = "CopyToHostF32";
  if (!src.defined()) return cpu::OpError(kOp, "tensor is missing");
  if (static_cast<int64_t>(out.size()) != src.numel()) {
    return cpu::OpError(
        kOp, absl::StrCat("host buffer has ", out.size(), " floats, tensor ", src.DebugString(), " has ", src.numel()));
  }
  if (out.empty()) return absl::OkStatus();
  if (src.data() == nullptr) return cpu::OpError(kOp, "tensor has no memory");
  const int64_t n = src.numel();
  switch (src.dtype()) {
    case DType::kF32: std::memcpy(out.data(), src.data(), n * sizeof(float)); return absl::OkStatus();
    case DType::kBF16: {
      const uint16_t* p = src.data_as<uint16_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(p[i]);
      return absl::OkStatus();
    }
    case DType::kF16: {
      const uint16_t* p = src.data_as<uint16_t>();
      for (int64_t i = 0; i < n; ++i) out[i] = Fp16ToFloat(p[i]);
      return absl::OkStatus();
    }
    default: return cpu::OpError(kOp, absl::StrCat("cannot convert ", cpu::DTypeStr(src.dtype()), " to f32"));
  }
}

absl::Status CpuBackend::Zero(const Tensor& dst) {
  if (!dst.defined()) return cpu::OpError("Zero", "tensor is missing");
  if (dst.bytes() > 0) {
    if (dst.data() == nullptr) return cpu::OpError("Zero", "tensor has no memory");
    std::memset(dst.data(), 0, dst.bytes());
  }
  return absl::OkStatus();
}

}  // namespace moeserve
