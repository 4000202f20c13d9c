#include "server/backend/cuda/cuda_backend.h"

#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cuda/error_flags.h"
#include "server/backend/cuda/cuda_checks.h"
#include "server/backend/cuda/cuda_status.h"
#include "server/backend/op_checks.h"
#include "server/common/numeric.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;

}  // namespace

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(int device) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return absl::UnavailableError(absl::StrCat(
        "no CUDA device available (", e == cudaSuccess ? std::string("0 devices") : std::string(cudaGetErrorString(e)),
        "); use --device cpu"));
  }
  if (device < 0 || device >= count) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA device ", device, " of ", count));
  }
  CUDA_RETURN_IF_ERROR(cudaSetDevice(device), "cudaSetDevice");
  cudaStream_t stream = nullptr;
  CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  cublasHandle_t cublas = nullptr;
  if (auto s = cuda_status::FromCublas(cublasCreate(&cublas), "cublasCreate"); !s.ok()) {
    cudaStreamDestroy(stream);
    return s;
  }
  cublasLtHandle_t lt = nullptr;
  if (auto s = cuda_status::FromCublas(cublasLtCreate(&lt), "cublasLtCreate"); !s.ok()) {
    cublasDestroy(cublas);
    cudaStreamDestroy(stream);
    return s;
  }
  std::unique_ptr<CudaBackend> b(new CudaBackend(device, stream, cublas, lt));
  RETURN_IF_ERROR(b->Init());
  return b;
}

CudaBackend::CudaBackend(int device, cudaStream_t stream, cublasHandle_t cublas, cublasLtHandle_t lt)
    : device_(device), stream_(stream), cublas_(cublas), lt_(lt) {
  const int dev = device_;
  allocator_ = std::make_shared<CachingAllocator>(CachingAllocator::RawOps{[dev](size_t bytes) -> void* {
                                                                             void* p = nullptr;
                                                                             cudaSetDevice(dev);
                                                                             // While this thread records a graph
                                                                             // (thread-local capture mode,
                                                                             // cuda_graphs.h) cudaMalloc is a
                                                                             // prohibited "potentially unsafe" call
                                                                             // that would fail and invalidate the
                                                                             // recording. A graph-pool block allocated
                                                                             // then is never freed while a graph uses
                                                                             // it, so relax the mode around the call
                                                                             // (what PyTorch's allocator does); outside
                                                                             // a capture this is a no-op.
                                                                             cudaStreamCaptureMode mode =
                                                                                 cudaStreamCaptureModeRelaxed;
                                                                             cudaThreadExchangeStreamCaptureMode(&mode);
                                                                             const cudaError_t e =
                                                                                 cudaMalloc(&p, bytes);
                                                                             cudaThreadExchangeStreamCaptureMode(&mode);
                                                                             if (e != cudaSuccess) {
                                                                               (void)cudaGetLastError();
                                                                               return nullptr;
                                                                             }
                                                                             return p;
                                                                           },
                                                                           [](void* p) { cudaFree(p); }});
}

absl::Status CudaBackend::Init() {
  CUBLAS_RETURN_IF_ERROR(cublasSetStream(cublas_, stream_), "cublasSetStream");
  CUBLAS_RETURN_IF_ERROR(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, device_), "SM count");
  ASSIGN_OR_RETURN(lt_workspace_, Allocate(DType::kU8, {static_cast<int64_t>(kLtWorkspaceBytes)}));
  ASSIGN_OR_RETURN(error_flags_, Allocate(DType::kI32, {1}));
  return Zero(error_flags_);
}

CudaBackend::~CudaBackend() {
  graphs_.reset();  // its graphs run on stream_
  cudaStreamSynchronize(stream_);
  for (auto& [key, plan] : lt_plans_) {
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.d);
    cublasLtMatmulDescDestroy(plan.desc);
  }
  lt_workspace_ = Tensor();
  error_flags_ = Tensor();
  cublasLtDestroy(lt_);
  cublasDestroy(cublas_);
  cudaStreamDestroy(stream_);
  // Cached blocks go back to the device when the last tensor is gone (allocator_ is shared).
}

GraphCapture* CudaBackend::graphs() {
  if (graphs_ == nullptr) graphs_ = std::make_unique<CudaGraphs>(stream_, allocator_);
  return graphs_.get();
}

absl::StatusOr<Tensor> CudaBackend::Allocate(DType dtype, Shape shape) {
  for (int64_t d : shape.dims()) {
    if (d < 0) return OpError("Allocate", absl::StrCat("negative shape ", shape.ToString()));
  }
  const size_t bytes = static_cast<size_t>(shape.numel()) * DTypeSize(dtype);
  void* p = allocator_->Allocate(bytes);
  if (p == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Allocate: out of CUDA memory for ", DTypeStr(dtype), shape.ToString()));
  }
  std::shared_ptr<CachingAllocator> alloc = allocator_;
  std::shared_ptr<void> storage(p, [alloc](void* q) { alloc->Free(q); });
  return Tensor(std::move(storage), p, dtype, shape);
}

absl::StatusOr<Tensor> CudaBackend::CreateWeight(absl::Span<const float> values, Shape shape) {
  if (static_cast<int64_t>(values.size()) != shape.numel()) {
    return OpError("CreateWeight", absl::StrCat(values.size(), " values for shape ", shape.ToString()));
  }
  const DType dtype = cuda_checks::WeightDType(shape);
  ASSIGN_OR_RETURN(Tensor t, Allocate(dtype, shape));
  if (values.empty()) return t;
  if (dtype == DType::kF32) {
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(t.data(), values.data(), values.size() * sizeof(float), cudaMemcpyHostToDevice, stream_),
        "CreateWeight: copy");
  } else {
    std::vector<uint16_t> bf(values.size());
    for (size_t i = 0; i < values.size(); ++i) bf[i] = FloatToBf16(values[i]);
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(t.data(), bf.data(), bf.size() * sizeof(uint16_t), cudaMemcpyHostToDevice, stream_),
        "CreateWeight: copy");
    // Pageable source: the copy is staged before cudaMemcpyAsync returns, but be explicit since
    // `bf` dies here.
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "CreateWeight: sync");
  }
  return t;
}

absl::Status CudaBackend::CopyFromHost(absl::Span<const uint8_t> bytes, const Tensor& dst) {
  RETURN_IF_ERROR(CheckHostCopy("CopyFromHost", dst, bytes.size()));
  if (bytes.empty()) return absl::OkStatus();
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst.data(), bytes.data(), bytes.size(), cudaMemcpyHostToDevice, stream_),
                       "CopyFromHost");
  return absl::OkStatus();
}

absl::Status CudaBackend::CopyToHost(const Tensor& src, absl::Span<uint8_t> bytes) {
  RETURN_IF_ERROR(CheckHostCopy("CopyToHost", src, bytes.size()));
  if (!bytes.empty()) {
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(bytes.data(), src.data(), bytes.size(), cudaMemcpyDeviceToHost, stream_),
                         "CopyToHost");
  }
  return Synchronize();
}

absl::Status CudaBackend::CopyToHostF32(const Tensor& src, absl::Span<float> out) {
  constexpr absl::string_view kOp = "CopyToHostF32";
  if (!src.defined()) return OpError(kOp, "tensor is missing");
  if (static_cast<int64_t>(out.size()) != src.numel()) {
    return OpError(
        kOp, absl::StrCat("host buffer has ", out.size(), " floats, tensor ", src.DebugString(), " has ", src.numel()));
  }
  if (out.empty()) return Synchronize();
  const int64_t n = src.numel();
  switch (src.dtype()) {
    case DType::kF32: return CopyToHost(src, absl::MakeSpan(reinterpret_cast<uint8_t*>(out.data()), n * 4));
    case DType::kBF16:
    case DType::kF16: {
      std::vector<uint16_t> raw(n);
      RETURN_IF_ERROR(CopyToHost(src, absl::MakeSpan(reinterpret_cast<uint8_t*>(raw.data()), n * 2)));
      for (int64_t i = 0; i < n; ++i) {
        out[i] = src.dtype() == DType::kBF16 ? Bf16ToFloat(raw[i]) : Fp16ToFloat(raw[i]);
      }
      return absl::OkStatus();
    }
    default: return OpError(kOp, absl::StrCat("cannot convert ", DTypeStr(src.dtype()), " to f32"));
  }
}

absl::Status CudaBackend::Zero(const Tensor& dst) {
  if (!dst.defined()) return OpError("Zero", "tensor is missing");
  if (dst.bytes() == 0) return absl::OkStatus();
  if (dst.data() == nullptr) return OpError("Zero", "tensor has no memory");
  CUDA_RETURN_IF_ERROR(cudaMemsetAsync(dst.data(), 0, dst.bytes(), stream_), "Zero");
  return absl::OkStatus();
}

absl::Status CudaBackend::Synchronize() {
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "Synchronize");
  return CheckDeviceErrors();
}

absl::StatusOr<DeviceMemoryStats> CudaBackend::MemoryStats() {
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_RETURN_IF_ERROR(cudaSetDevice(device_), "cudaSetDevice");
  CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  const CachingAllocator::Stats a = allocator_->stats();
  DeviceMemoryStats m;
  m.total_bytes = static_cast<int64_t>(total_bytes);
  m.free_bytes = static_cast<int64_t>(free_bytes);
  m.in_use_bytes = static_cast<int64_t>(a.in_use_bytes);
  m.cached_bytes = static_cast<int64_t>(a.cached_bytes);
  m.peak_in_use_bytes = static_cast<int64_t>(a.peak_in_use_bytes);
  m.raw_allocs = a.raw_allocs;
  m.raw_allocs_since_mark = a.raw_allocs_since_mark;
  return m;
}

absl::Status CudaBackend::CheckDeviceErrors() {
  unsigned flags = 0;
  CUDA_RETURN_IF_ERROR(cudaMemcpy(&flags, error_flags_.data(), sizeof(flags), cudaMemcpyDeviceToHost),
                       "reading the device error word");
  if (flags == 0) return absl::OkStatus();
  CUDA_RETURN_IF_ERROR(cudaMemset(error_flags_.data(), 0, sizeof(flags)), "clearing the error word");
  std::string what;
  auto add = [&](unsigned bit, const char* text) {
    if (flags & bit) absl::StrAppend(&what, what.empty() ? "" : "; ", text);
  };
  add(kernels::kErrGatherIndex, "Embedding/GatherRows: an index is out of range");
  add(kernels::kErrRopePosition, "Rope: a position is outside the cos_sin table");
  add(kernels::kErrCacheSlot, "WriteKvCache/WriteMlaCache: a slot is outside the cache");
  add(kernels::kErrMoeExpertId, "MoeExperts: an expert id is outside [0, E)");
  add(kernels::kErrAttentionLayout,
      "PagedAttention: query_start_loc/seq_lens/block_tables are inconsistent or out of range");
  return absl::InvalidArgumentError(
      absl::StrCat("a CUDA op read a bad index (its output row was "
                   "skipped or zero-filled): ",
                   what));
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> b, CudaBackend::Create(options.device_index));
  return std::unique_ptr<Backend>(std::move(b));
}

}  // namespace moeserve
