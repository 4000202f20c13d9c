#include "server/backend/op_checks.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/numeric.h"
#include "server/common/status_macros.h"

namespace moeserve {

absl::Status OpError(absl::string_view op, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(op, ": ", message));
}

absl::Status Expect(absl::string_view op, absl::string_view name, const Tensor& t, DType dtype,
                    std::initializer_list<Dim> dims) {
  if (!t.defined()) return OpError(op, absl::StrCat(name, " is missing"));
  if (t.dtype() != dtype) {
    return OpError(op, absl::StrCat(name, " has dtype ", DTypeStr(t.dtype()), ", expected ", DTypeStr(dtype)));
  }
  bool ok = t.rank() == static_cast<int>(dims.size());
  int i = 0;
  for (const Dim& d : dims) {
    if (!ok) break;
    if (t.dim(i) < 0 || (d.size >= 0 && t.dim(i) != d.size)) ok = false;
    ++i;
  }
  if (!ok) {
    const std::string expected = absl::StrJoin(dims, ", ", [](std::string* out, const Dim& d) {
      if (d.size >= 0) {
        absl::StrAppend(out, d.size);
      } else {
        absl::StrAppend(out, d.label);
      }
    });
    return OpError(op, absl::StrCat(name, " has shape ", t.shape().ToString(), ", expected [", expected, "]"));
  }
  if (t.numel() > 0 && t.data() == nullptr) return OpError(op, absl::StrCat(name, " has no memory"));
  return absl::OkStatus();
}

absl::Status CheckHostCopy(absl::string_view op, const Tensor& t, size_t bytes) {
  if (!t.defined()) return OpError(op, "tensor is missing");
  if (t.bytes() != bytes) {
    return OpError(op, absl::StrCat("host buffer has ", bytes, " bytes, tensor ", t.DebugString(), " has ", t.bytes()));
  }
  if (bytes > 0 && t.data() == nullptr) return OpError(op, "tensor has no memory");
  return absl::OkStatus();
}

absl::Status CheckMoeRoutingParams(const MoeRoutingParams& p, int64_t E) {
  constexpr absl::string_view kOp = "MoeRoute";
  // kGreedy ignores the group parameters, as Hugging Face does.
  const bool grouped = p.method != MoeTopkMethod::kGreedy;
  if (grouped && (p.n_group < 1 || E % p.n_group != 0)) {
    return OpError(kOp, absl::StrCat("n_group ", p.n_group, " does not divide ", E, " experts"));
  }
  const int64_t per_group = grouped ? E / p.n_group : E;
  if (grouped && (p.topk_group < 1 || p.topk_group > p.n_group)) {
    return OpError(kOp, absl::StrCat("topk_group ", p.topk_group, " is outside [1, n_group ", p.n_group, "]"));
  }
  const int64_t eligible = grouped ? p.topk_group * per_group : E;
  if (p.top_k < 1 || p.top_k > eligible) {
    return OpError(kOp,
                   absl::StrCat("top_k ", p.top_k, " is outside [1, ", eligible, "] (experts in the selected groups)"));
  }
  if (p.method == MoeTopkMethod::kNoAuxTc && per_group < 2) {
    return OpError(kOp,
                   absl::StrCat("noaux_tc ranks groups by their top-2 experts but groups have ", per_group, " expert"));
  }
  return absl::OkStatus();
}

absl::Status CheckAttentionMetaShapes(absl::string_view op, const AttentionMetadata& meta, int64_t T,
                                      int64_t block_size) {
  RETURN_IF_ERROR(Expect(op, "meta.seq_lens", meta.seq_lens, DType::kI32, {"S"}));
  const int64_t S = meta.seq_lens.dim(0);
  RETURN_IF_ERROR(Expect(op, "meta.query_start_loc", meta.query_start_loc, DType::kI32, {S + 1}));
  RETURN_IF_ERROR(Expect(op, "meta.block_tables", meta.block_tables, DType::kI32, {S, "max_blocks_per_seq"}));
  if (meta.num_seqs != S || meta.num_tokens != T) {
    return OpError(op, absl::StrCat("meta has num_seqs ", meta.num_seqs, " and num_tokens ", meta.num_tokens,
                                    ", expected ", S, " and ", T));
  }
  if (meta.block_size != block_size) {
    return OpError(
        op, absl::StrCat("meta.block_size ", meta.block_size, " differs from the cache's block size ", block_size));
  }
  if (S == 0 && T > 0) return OpError(op, "tokens without sequences");
  return absl::OkStatus();
}

absl::Status CheckRopeWriteKvCacheShapes(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                                         const Tensor& cos_sin, int32_t rotary_dim, const AttentionMetadata& meta,
                                         const Tensor& k_cache, const Tensor& v_cache, DType act) {
  constexpr absl::string_view kOp = "RopeWriteKvCache";
  RETURN_IF_ERROR(Expect(kOp, "q", q, act, {"T", "H", "D"}));
  const int64_t T = q.dim(0), H = q.dim(1), D = q.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "k", k, act, {T, "Hkv", D}));
  const int64_t Hkv = k.dim(1);
  if (Hkv == 0 || H % Hkv != 0) {
    return OpError(kOp, absl::StrCat("q has ", H, " heads, not a multiple of k's ", Hkv, " kv heads"));
  }
  RETURN_IF_ERROR(Expect(kOp, "v", v, act, {T, Hkv, "Dv"}));
  const int64_t Dv = v.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "positions", positions, DType::kI32, {T}));
  if (rotary_dim <= 0 || rotary_dim % 2 != 0 || rotary_dim > D) {
    return OpError(kOp, absl::StrCat("rotary_dim ", rotary_dim, " must be even and in (0, ", D, "]"));
  }
  RETURN_IF_ERROR(Expect(kOp, "cos_sin", cos_sin, DType::kF32, {"max_position", rotary_dim}));
  RETURN_IF_ERROR(Expect(kOp, "k_cache", k_cache, act, {"NB", "BS", Hkv, D}));
  const int64_t NB = k_cache.dim(0), BS = k_cache.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "v_cache", v_cache, act, {NB, BS, Hkv, Dv}));
  RETURN_IF_ERROR(Expect(kOp, "meta.slot_mapping", meta.slot_mapping, DType::kI32, {T}));
  if (meta.block_size != BS) {
    return OpError(kOp, absl::StrCat("meta.block_size ", meta.block_size, " differs from the cache's block size ", BS));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> CheckFp8BlockWeight(absl::Span<const uint8_t> bytes, absl::Span<const float> scales,
                                            const Shape& shape) {
  constexpr absl::string_view kOp = "CreateFp8BlockWeight";
  if (shape.rank() != 2 && shape.rank() != 3) {
    return OpError(kOp, absl::StrCat("shape ", shape.ToString(), " is not [R, C] or [E, R, C]"));
  }
  const int64_t mats = shape.rank() == 3 ? shape[0] : 1;
  const int64_t rows = shape[shape.rank() - 2], cols = shape[shape.rank() - 1];
  const int64_t want_scales = mats * ((rows + 127) / 128) * ((cols + 127) / 128);
  if (static_cast<int64_t>(bytes.size()) != shape.numel()) {
    return OpError(kOp, absl::StrCat(bytes.size(), " bytes for shape ", shape.ToString()));
  }
  if (static_cast<int64_t>(scales.size()) != want_scales) {
    return OpError(kOp, absl::StrCat(scales.size(), " scales for shape ", shape.ToString(), ", expected ", want_scales,
                                     " (one per 128x128 block)"));
  }
  return mats;
}

std::vector<float> DequantizeFp8BlockWeight(absl::Span<const uint8_t> bytes, absl::Span<const float> scales,
                                            const Shape& shape) {
  const int64_t mats = shape.rank() == 3 ? shape[0] : 1;
  const int64_t rows = shape[shape.rank() - 2], cols = shape[shape.rank() - 1];
  const int64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
  std::vector<float> out(bytes.size());
  for (int64_t m = 0; m < mats; ++m) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t base = (m * rows + r) * cols;
      const float* s = scales.data() + (m * sr + r / 128) * sc;
      for (int64_t c = 0; c < cols; ++c) out[base + c] = Fp8E4M3ToFloat(bytes[base + c]) * s[c / 128];
    }
  }
  return out;
}

absl::Status CheckHostWeight(absl::string_view op, const HostWeight& w) {
  if (w.dtype != DType::kF32 && w.dtype != DType::kBF16 && w.dtype != DType::kF16) {
    return OpError(op, absl::StrCat("weight dtype ", DTypeStr(w.dtype), " is not f32, bf16 or f16"));
  }
  for (int64_t d : w.shape.dims()) {
    if (d < 0) return OpError(op, absl::StrCat("negative shape ", w.shape.ToString()));
  }
  const size_t want = static_cast<size_t>(w.shape.numel()) * DTypeSize(w.dtype);
  if (w.bytes.size() != want) {
    return OpError(
        op, absl::StrCat(w.bytes.size(), " bytes for ", DTypeStr(w.dtype), w.shape.ToString(), ", expected ", want));
  }
  return absl::OkStatus();
}

std::vector<float> HostWeightToF32(const HostWeight& w) {
  const size_t n = static_cast<size_t>(w.shape.numel());
  std::vector<float> values(n);
  const uint8_t* p = w.bytes.data();
  if (w.dtype == DType::kF32) {
    if (n > 0) std::memcpy(values.data(), p, n * sizeof(float));
    return values;
  }
  for (size_t i = 0; i < n; ++i) {
    uint16_t bits;
    std::memcpy(&bits, p + 2 * i, 2);
    values[i] = w.dtype == DType::kBF16 ? Bf16ToFloat(bits) : Fp16ToFloat(bits);
  }
  return values;
}

}  // namespace moeserve
