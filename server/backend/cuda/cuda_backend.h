#ifndef MOESERVE_SERVER_BACKEND_CUDA_CUDA_BACKEND_H_
#define MOESERVE_SERVER_BACKEND_CUDA_CUDA_BACKEND_H_

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/backend/cuda/caching_allocator.h"
#include "server/backend/cuda/cuda_graphs.h"
#include "server/backend/registry.h"

namespace moeserve {

// The CUDA backend: one device, one stream, bf16 activations with fp32 accumulation, kernels from
// cuda/ and GEMMs through cuBLASLt (Linear) and cuBLAS (per-head and per-expert products).
//
// Memory comes from a caching allocator over cudaMalloc, so a steady-state step allocates nothing
// from the device; tensors may outlive the backend. Weights: rank-1 in f32 (norm weights, biases,
// routing bias), larger in bf16. Every op validates operand shapes and dtypes on the host
// (cuda_checks.h) and queues its work; index values in device memory are bounds-checked by the
// kernels, and a bad one surfaces as InvalidArgument from the next Synchronize/CopyToHost*.
// MoeExperts never synchronises: expert ids are sorted on the device (cuda_moe.cc).
//
// Thread safety: requires external synchronization (one engine thread at a time), as every Backend.
class CudaBackend : public Backend {
 public:
  // Unavailable when there is no CUDA device (or no usable driver).
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(int device = 0);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string_view name() const override { return "cuda"; }
  DType activation_dtype() const override { return DType::kBF16; }
  CachingAllocator::Stats allocator_stats() const { return allocator_->stats(); }
  // The one stream every op runs on (benchmarks time ops with CUDA events; NCCL runs on it).
  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }

  // Stream capture into a private allocator pool (cuda_graphs.h), created on first use.
  GraphCapture* graphs() override;

  absl::StatusOr<Tensor> Allocate(DType dtype, Shape shape) override;
  absl::StatusOr<Tensor> CreateWeight(absl::Span<const float> values, Shape shape) override;
  absl::Status CopyFromHost(absl::Span<const uint8_t> bytes, const Tensor& dst) override;
  absl::Status CopyToHost(const Tensor& src, absl::Span<uint8_t> bytes) override;
  absl::Status CopyToHostF32(const Tensor& src, absl::Span<float> out) override;
  absl::Status Zero(const Tensor& dst) override;
  absl::Status Synchronize() override;
  absl::StatusOr<DeviceMemoryStats> MemoryStats() override;
  void MarkMemory() override { allocator_->Mark(); }
  void ReleaseCachedMemory() override { allocator_->ReleaseCached(); }
  // cuda_sampling.cc: cuda/sampling.cuh, one block per row.
  absl::Status SampleTokens(const Tensor& logits, const SamplingBatch& batch, std::vector<SampledToken>* out) override;

  // Row ops, attention, MoE (cuda_ops.cc).
  absl::Status Embedding(const Tensor& table, const Tensor& ids, const Tensor& out) override;
  absl::Status EmbeddingShard(const Tensor& table, const Tensor& ids, int64_t first_id, const Tensor& out) override;
  absl::Status RmsNorm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) override;
  absl::Status AddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& w, float eps,
                          const Tensor& out) override;
  absl::Status Add(const Tensor& a, const Tensor& b, const Tensor& out) override;
  absl::Status Rope(const Tensor& x, const Tensor& positions, const Tensor& cos_sin, int32_t rotary_dim,
                    RopeStyle style) override;
  absl::Status SiluMul(const Tensor& gate_up, const Tensor& out) override;
  absl::Status GatherRows(const Tensor& x, const Tensor& indices, const Tensor& out) override;
  absl::Status WriteKvCache(const Tensor& k, const Tensor& v, const AttentionMetadata& meta, const Tensor& k_cache,
                            const Tensor& v_cache) override;
  absl::Status PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                              const AttentionMetadata& meta, float scale, const Tensor& out) override;
  absl::Status RopeWriteKvCache(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                                const Tensor& cos_sin, int32_t rotary_dim, RopeStyle style,
                                const AttentionMetadata& meta, const Tensor& k_cache, const Tensor& v_cache) override;
  absl::Status WriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const AttentionMetadata& meta,
                             const Tensor& cache) override;
  absl::Status RopeWriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const Tensor& positions, const Tensor& cos_sin,
                                 RopeStyle style, const AttentionMetadata& meta, const Tensor& cache) override;
  absl::Status PagedMlaAttention(const Tensor& q_latent, const Tensor& q_pe, const Tensor& cache,
                                 const AttentionMetadata& meta, float scale, const Tensor& out) override;
  absl::Status MoeRoute(const Tensor& router_logits, const Tensor& correction_bias, const MoeRoutingParams& params,
                        const Tensor& topk_ids, const Tensor& topk_weights) override;
  absl::Status MoeExperts(const Tensor& x, const Tensor& topk_ids, const Tensor& topk_weights, const Tensor& gate_up,
                          const Tensor& down, const Tensor& out, const MoeExpertsExtras& extras) override;
  // Keeps [E, R, C] weights with R, C multiples of 128 as fp8 (cuda_moe.cc).
  absl::StatusOr<Tensor> CreateFp8BlockWeight(absl::Span<const uint8_t> bytes, absl::Span<const float> scales,
                                              Shape shape) override;

  // Matrix products (cuda_gemm.cc).
  absl::Status Linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) override;
  absl::Status HeadwiseLinear(const Tensor& x, const Tensor& w, const Tensor& out) override;

 private:
  // A cached cuBLASLt plan for one (M, N, K, out dtype, alignment) Linear shape.
  struct LtPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  using LtKey = std::tuple<int64_t, int64_t, int64_t, int, int>;

  CudaBackend(int device, cudaStream_t stream, cublasHandle_t cublas, cublasLtHandle_t lt);
  absl::Status Init();
  // Reads and clears the device error word; InvalidArgument naming what was out of range.
  absl::Status CheckDeviceErrors();
  absl::StatusOr<LtPlan*> GetLtPlan(int64_t m, int64_t n, int64_t k, DType out_dtype, int align);
  // out [m, n] = x [m, k] · w[n, k]ᵀ for bf16 x, w with row strides ldx, ldw, ldo (elements).
  absl::Status GemmXWt(const void* x, int64_t ldx, const void* w, int64_t ldw, void* out, int64_t ldo, int64_t m,
                       int64_t n, int64_t k);

  int device_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  cublasLtHandle_t lt_;
  std::shared_ptr<CachingAllocator> allocator_;
  Tensor lt_workspace_;
  Tensor error_flags_;  // one u32 (kernels::ErrorFlag bits)
  absl::flat_hash_map<LtKey, LtPlan> lt_plans_;
  int num_sms_ = 0;  // multiprocessors of device_, from Init (split-KV plans)
  std::unique_ptr<CudaGraphs> graphs_;
};

// The registry's factory (declared in registry.cc under MOESERVE_HAS_CUDA_BACKEND).
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const BackendOptions& options);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_CUDA_CUDA_BACKEND_H_
