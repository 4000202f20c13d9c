#ifndef MOESERVE_SERVER_BACKEND_OP_CHECKS_H_
#define MOESERVE_SERVER_BACKEND_OP_CHECKS_H_

// Operand validation shared by every backend, so that the CPU reference and the CUDA backend
// refuse the same inputs with the same messages. Backend-specific limits (kernel head dims, block
// sizes) and checks of values that live in device memory stay with each backend.

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/backend/tensor.h"

namespace moeserve {

// One expected dimension: a fixed size, or any size (shown by its label in error messages).
struct Dim {
  Dim(int64_t s) : size(s) {}       // NOLINT: implicit so that {4, "out"} reads naturally
  Dim(const char* l) : label(l) {}  // NOLINT
  int64_t size = -1;
  absl::string_view label;
};

// InvalidArgument "<op>: <message>".
absl::Status OpError(absl::string_view op, absl::string_view message);

// OK when `t` is defined, has `dtype`, the rank of `dims` and every fixed dimension, and has memory
// when non-empty; otherwise InvalidArgument such as "Linear: w has shape [3, 5], expected [out, 4]".
absl::Status Expect(absl::string_view op, absl::string_view name, const Tensor& t, DType dtype,
                    std::initializer_list<Dim> dims);

// DTypeName as an absl::string_view (this Abseil does not alias std::string_view).
inline absl::string_view DTypeStr(DType d) {
  const std::string_view s = DTypeName(d);
  return absl::string_view(s.data(), s.size());
}

// A host <-> device copy of `bytes` bytes into or out of `t`.
absl::Status CheckHostCopy(absl::string_view op, const Tensor& t, size_t bytes);

// MoeRoute's parameters against E experts: n_group divides E (grouped methods), topk_group in
// [1, n_group], top_k within the experts of the selected groups, noaux_tc groups of ≥ 2 experts.
absl::Status CheckMoeRoutingParams(const MoeRoutingParams& params, int64_t num_experts);

// CreateFp8BlockWeight's operands: shape [R, C] or [E, R, C], bytes.size() == numel, scales one per
// 128×128 block of each [R, C] matrix. Returns the number of matrices (E or 1).
absl::StatusOr<int64_t> CheckFp8BlockWeight(absl::Span<const uint8_t> bytes, absl::Span<const float> scales,
                                            const Shape& shape);
// The fp32 values of a checked fp8 block weight (the reference every backend agrees with).
std::vector<float> DequantizeFp8BlockWeight(absl::Span<const uint8_t> bytes, absl::Span<const float> scales,
                                            const Shape& shape);

// CreateWeightFromHost's operand: dtype f32, bf16 or f16, a non-negative shape, and exactly
// numel · DTypeSize(dtype) bytes.
absl::Status CheckHostWeight(absl::string_view op, const HostWeight& w);
// The fp32 values of a checked HostWeight (16-bit values widen exactly).
std::vector<float> HostWeightToF32(const HostWeight& w);

// The shapes and counts of `meta` for an attention op over T tokens and a cache of `block_size`
// (not its contents, which may live on a device).
absl::Status CheckAttentionMetaShapes(absl::string_view op, const AttentionMetadata& meta, int64_t T,
                                      int64_t block_size);

// RopeWriteKvCache's operands with activations of dtype `act`: q [T, H, D], k [T, Hkv, D],
// v [T, Hkv, Dv], positions i32 [T], rotary_dim even in (0, D], cos_sin f32
// [max_position, rotary_dim], k_cache [NB, BS, Hkv, D], v_cache [NB, BS, Hkv, Dv],
// meta.slot_mapping i32 [T] and meta.block_size == BS. Values (positions, slots) are not read.
absl::Status CheckRopeWriteKvCacheShapes(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                                         const Tensor& cos_sin, int32_t rotary_dim, const AttentionMetadata& meta,
                                         const Tensor& k_cache, const Tensor& v_cache, DType act);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_BACKEND_OP_CHECKS_H_
