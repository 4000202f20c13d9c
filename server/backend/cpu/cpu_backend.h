#ifndef MOESERVE_SERVER_BACKEND_CPU_CPU_BACKEND_H_
#define MOESERVE_SERVER_BACKEND_CPU_CPU_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/backend/cpu/host_allocator.h"
#include "server/backend/tensor.h"
#include "server/common/thread_pool.h"

namespace moeserve {

struct CpuBackendOptions {
  int num_threads = 0;  // <= 0: every hardware thread
  // Store every weight as fp32 (the reference the other backends' parity is measured against).
  // Off: bf16 / f16 weights of rank >= 2 stay 16-bit (widened inside the GEMM, exactly: the
  // products are the same, only the summation order of a few ops differs; but see exact_gemm).
  bool f32_weights = false;
  // Keep activations fp32 in every product (the exact path, the reference for parity tests). Off:
  // products with bf16 weights round the activations to bf16 and run the CPU's bf16 dot-product
  // instruction where it has one (AVX512_BF16; cpu_kernels.h), as llama.cpp and oneDNN do: several
  // times faster, results within bf16 rounding of the exact ones (~1e-2 on outputs of magnitude 1).
  bool exact_gemm = false;
  // Freed activation blocks kept for the next step (cpu/host_allocator.h), at most this many bytes.
  int64_t max_cached_bytes = int64_t{512} << 20;
};

// The CPU backend: host memory, fp32 activations (rounded to bf16 inside products with bf16 weights
// where the CPU has a bf16 dot product, unless exact_gemm), fp32 or 16-bit weights (see
// CpuBackendOptions), data-parallel ops on a ThreadPool whose inner loops run the kernel level
// picked for this CPU (cpu_kernels.h). Every op validates its operands (ranks, shapes, dtypes, and
// every index it reads through: ids, positions, slots, block tables) before touching memory, and
// returns InvalidArgument naming the op and the operand. Ops run synchronously: results are visible
// when the call returns.
//
// Memory is 64-byte aligned and owned by the Tensor's shared storage; it is freed when the last
// view is gone, even after the backend itself is destroyed. Freed blocks are reused by later
// allocations of the same size (a step arena: steady-state steps take nothing from the system).
//
// Thread safety: requires external synchronization (one engine thread at a time), as every Backend.
class CpuBackend : public Backend {
 public:
  // num_threads <= 0 uses every hardware thread.
  explicit CpuBackend(int num_threads = 0);
  explicit CpuBackend(const CpuBackendOptions& options);
  ~CpuBackend() override;
  CpuBackend(const CpuBackend&) = delete;
  CpuBackend& operator=(const CpuBackend&) = delete;

  std::string_view name() const override { return "cpu"; }
  DType activation_dtype() const override { return DType::kF32; }
  int num_threads() const { return pool_.num_threads(); }

  // Memory.
  absl::StatusOr<Tensor> Allocate(DType dtype, Shape shape) override;
  absl::StatusOr<Tensor> CreateWeight(absl::Span<const float> values, Shape shape) override;
  // Rank >= 2 bf16 / f16 weights stay 16-bit unless options.f32_weights; norms and biases (rank
  // <= 1) become fp32. With w.keep_alive and a suitably aligned pointer, the bytes are used in
  // place (no copy): such a weight is read-only memory, never to be written by an op.
  absl::StatusOr<Tensor> CreateWeightFromHost(const HostWeight& w) override;
  // Dequantizes (the reference for backends that keep fp8).
  absl::StatusOr<Tensor> CreateFp8BlockWeight(absl::Span<const uint8_t> bytes, absl::Span<const float> scales,
                                              Shape shape) override;
  absl::Status CopyFromHost(absl::Span<const uint8_t> bytes, const Tensor& dst) override;
  absl::Status CopyToHost(const Tensor& src, absl::Span<uint8_t> bytes) override;
  absl::Status CopyToHostF32(const Tensor& src, absl::Span<float> out) override;
  absl::Status Zero(const Tensor& dst) override;
  absl::Status Synchronize() override { return absl::OkStatus(); }

  // Element-wise and row ops (cpu_elementwise.cc).
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

  // Matrix products (cpu_gemm.cc).
  absl::Status Linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out) override;
  absl::Status HeadwiseLinear(const Tensor& x, const Tensor& w, const Tensor& out) override;

  // Paged KV cache and attention (cpu_attention.cc).
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

  // Mixture of experts (cpu_moe.cc). MoeRoute breaks score ties towards the lower expert (and
  // group) index.
  absl::Status MoeRoute(const Tensor& router_logits, const Tensor& correction_bias, const MoeRoutingParams& params,
                        const Tensor& topk_ids, const Tensor& topk_weights) override;
  absl::Status MoeExperts(const Tensor& x, const Tensor& topk_ids, const Tensor& topk_weights, const Tensor& gate_up,
                          const Tensor& down, const Tensor& out, const MoeExpertsExtras& extras) override;

 private:
  CpuBackendOptions options_;
  ThreadPool pool_;
  std::shared_ptr<cpu::HostAllocator> allocator_;
  // Scratch reused across MoeExperts calls (the backend is single-threaded at the API).
  std::vector<float> moe_scratch_;
  std::vector<int32_t> moe_index_scratch_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_CPU_CPU_BACKEND_H_
