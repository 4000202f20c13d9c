#ifndef MOESERVE_SERVER_BACKEND_CUDA_CUDA_CHECKS_H_
#define MOESERVE_SERVER_BACKEND_CUDA_CUDA_CHECKS_H_

// Operand validation of the CUDA backend's ops: ranks, shapes and dtypes, with the CPU reference's
// messages (through server/backend/op_checks.h). Values that live in device memory (ids, positions, slots, block
// tables, expert ids) are not read here: the kernels bounds-check them (cuda/error_flags.h). Plain C++: unit-tested
// without a GPU on tensors whose data pointers are never dereferenced.
//
// Storage dtypes: activations bf16; CreateWeight keeps rank-1 weights (norm weights, biases,
// correction bias) in f32 and larger ones in bf16; rope tables, router logits (f32 or bf16),
// routing weights are f32; indices i32.

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/backend/backend.h"
#include "server/backend/tensor.h"

namespace moeserve::cuda_checks {

inline constexpr DType kAct = DType::kBF16;
inline constexpr int kMaxAttentionBlockSize = 128;

// The dtype CreateWeight stores a weight of this shape in.
DType WeightDType(const Shape& shape);

absl::Status CheckEmbedding(const Tensor& table, const Tensor& ids, const Tensor& out);
absl::Status CheckLinear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out);
absl::Status CheckHeadwiseLinear(const Tensor& x, const Tensor& w, const Tensor& out);
absl::Status CheckRmsNorm(const Tensor& x, const Tensor& w, const Tensor& out);
absl::Status CheckAddRmsNorm(const Tensor& x, const Tensor& residual, const Tensor& w, const Tensor& out);
absl::Status CheckAdd(const Tensor& a, const Tensor& b, const Tensor& out);
absl::Status CheckRope(const Tensor& x, const Tensor& positions, const Tensor& cos_sin, int32_t rotary_dim);
absl::Status CheckSiluMul(const Tensor& gate_up, const Tensor& out);
absl::Status CheckGatherRows(const Tensor& x, const Tensor& indices, const Tensor& out);
absl::Status CheckWriteKvCache(const Tensor& k, const Tensor& v, const AttentionMetadata& meta, const Tensor& k_cache,
                               const Tensor& v_cache);
absl::Status CheckRopeWriteKvCache(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                                   const Tensor& cos_sin, int32_t rotary_dim, const AttentionMetadata& meta,
                                   const Tensor& k_cache, const Tensor& v_cache);
absl::Status CheckPagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                 const AttentionMetadata& meta, const Tensor& out);
absl::Status CheckWriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const AttentionMetadata& meta,
                                const Tensor& cache);
absl::Status CheckRopeWriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const Tensor& positions,
                                    const Tensor& cos_sin, const AttentionMetadata& meta, const Tensor& cache);
absl::Status CheckPagedMlaAttention(const Tensor& q_latent, const Tensor& q_pe, const Tensor& cache,
                                    const AttentionMetadata& meta, const Tensor& out);
absl::Status CheckMoeRoute(const Tensor& router_logits, const Tensor& correction_bias, const MoeRoutingParams& params,
                           const Tensor& topk_ids, const Tensor& topk_weights);
// Also: E ≤ kMoeMaxExperts, d and I multiples of 8 (of 128 for fp8 weights), extras' shapes.
absl::Status CheckMoeExperts(const Tensor& x, const Tensor& topk_ids, const Tensor& topk_weights, const Tensor& gate_up,
                             const Tensor& down, const Tensor& out, const MoeExpertsExtras& extras);

}  // namespace moeserve::cuda_checks

#endif  // MOESERVE_SERVER_BACKEND_CUDA_CUDA_CHECKS_H_
