// Paged KV cache writes and causal attention over the paged cache (standard/GQA and MLA).
//
// Attention runs one (query token, group of heads reading the same keys) per work item with an
// online softmax over the sequence's cache positions, one KV block at a time (the kernel level's
// attend_block: the block's scores, one rescale of the running max, sum and accumulators, then the
// weighted values), so a GQA group's or MLA's heads share every key and value load. Groups are
// split into fewer heads per item only when there would otherwise be too few items to keep every
// thread busy (decode). Parallel over tokens × groups.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/backend/cpu/cpu_backend.h"
#include "server/backend/cpu/cpu_internal.h"
#include "server/common/status_macros.h"

namespace moeserve {
namespace {

using cpu::Expect;
using cpu::OpError;

// Validates slot_mapping [T] against a cache of num_blocks × block_size slots.
absl::Status CheckSlots(absl::string_view op, const AttentionMetadata& meta, int64_t T, int64_t num_blocks,
                        int64_t block_size) {
  RETURN_IF_ERROR(Expect(op, "meta.slot_mapping", meta.slot_mapping, DType::kI32, {T}));
  if (meta.block_size != block_size) {
    return OpError(
        op, absl::StrCat("meta.block_size ", meta.block_size, " differs from the cache's block size ", block_size));
  }
  const int32_t* slots = meta.slot_mapping.data_as<int32_t>();
  const int64_t limit = num_blocks * block_size;
  for (int64_t t = 0; t < T; ++t) {
    if (slots[t] >= limit) {
      return OpError(
          op, absl::StrCat("meta.slot_mapping[", t, "] = ", slots[t], " is outside the cache's ", limit, " slots"));
    }
  }
  return absl::OkStatus();
}

// A validated host view of the sequence layout of AttentionMetadata.
struct SeqLayout {
  const int32_t* qsl = nullptr;
  const int32_t* seq_lens = nullptr;
  const int32_t* block_tables = nullptr;
  int64_t max_blocks = 0;
  int64_t block_size = 0;
  std::vector<int32_t> token_seq;  // sequence of each token
};

absl::Status CheckLayout(absl::string_view op, const AttentionMetadata& meta, int64_t T, int64_t num_blocks,
                         int64_t block_size, SeqLayout* layout) {
  RETURN_IF_ERROR(CheckAttentionMetaShapes(op, meta, T, block_size));
  const int64_t S = meta.seq_lens.dim(0);
  const int32_t* qsl = meta.query_start_loc.data_as<int32_t>();
  const int32_t* lens = meta.seq_lens.data_as<int32_t>();
  const int32_t* bt = meta.block_tables.data_as<int32_t>();
  const int64_t max_blocks = meta.block_tables.dim(1);
  if (qsl[0] != 0 || qsl[S] != T) {
    return OpError(op, absl::StrCat("meta.query_start_loc must run from 0 to ", T, ", got ", qsl[0], " .. ", qsl[S]));
  }
  layout->token_seq.assign(T, 0);
  for (int64_t s = 0; s < S; ++s) {
    const int64_t q_len = static_cast<int64_t>(qsl[s + 1]) - qsl[s];
    if (q_len < 0) {
      return OpError(op, absl::StrCat("meta.query_start_loc decreases at sequence ", s));
    }
    if (q_len > meta.max_query_len) {
      return OpError(
          op, absl::StrCat("sequence ", s, " has ", q_len, " query tokens > meta.max_query_len ", meta.max_query_len));
    }
    const int64_t len = lens[s];
    if (len < q_len || len > meta.max_seq_len || len > max_blocks * block_size) {
      return OpError(op, absl::StrCat("meta.seq_lens[", s, "] = ", len, " must be in [", q_len, ", min(max_seq_len ",
                                      meta.max_seq_len, ", ", max_blocks * block_size, ")]"));
    }
    for (int64_t b = 0; b < (len + block_size - 1) / block_size; ++b) {
      const int32_t phys = bt[s * max_blocks + b];
      if (phys < 0 || phys >= num_blocks) {
        return OpError(
            op, absl::StrCat("meta.block_tables[", s, ", ", b, "] = ", phys, " is outside [0, ", num_blocks, ")"));
      }
    }
    for (int64_t t = qsl[s]; t < qsl[s + 1]; ++t) layout->token_seq[t] = static_cast<int32_t>(s);
  }
  layout->qsl = qsl;
  layout->seq_lens = lens;
  layout->block_tables = bt;
  layout->max_blocks = max_blocks;
  layout->block_size = block_size;
  return absl::OkStatus();
}

// Causal attention of every query token of `lay` over its sequence's cache, G = `group` heads at a
// time reading the same cache rows (see the file comment). `rows(t, first_head)` gives the
// AttendArgs of those heads' queries (num_queries set by the caller); key_base(phys, kv) and
// value_base(phys, kv) the first key / value row of block `phys` for kv head `kv`.
struct AttentionPlan {
  int64_t T, num_kv, group, dv, block_size, key_stride, value_stride, out_stride;
  int64_t avg_ctx;
};

template <class QueryArgs, class KeyBase, class ValueBase>
void RunAttention(ThreadPool& pool, const SeqLayout& lay, const AttentionPlan& p, QueryArgs query_args,
                  KeyBase key_base, ValueBase value_base, float* out) {
  // Heads per item: the whole group unless that leaves fewer than two items per thread.
  const int64_t want_items = 2 * pool.num_threads();
  int64_t chunks = 1;
  while (chunks < p.group && p.T * p.num_kv * chunks < want_items) ++chunks;
  const int64_t per_item = (p.group + chunks - 1) / chunks;
  chunks = (p.group + per_item - 1) / per_item;
  const int64_t items = p.T * p.num_kv * chunks;
  const cpu::AttendBlockFn attend = cpu::Kernels().attend_block;
  pool.ParallelFor(items, cpu::RowGrain(p.avg_ctx * per_item * 2 * p.dv), [&](int64_t b, int64_t e) {
    std::vector<float> scores(per_item * p.block_size), acc(per_item * p.dv);
    std::vector<cpu::SoftmaxState> state(per_item);
    for (int64_t item = b; item < e; ++item) {
      const int64_t c = item % chunks, kv = (item / chunks) % p.num_kv, t = item / (chunks * p.num_kv);
      const int64_t h0 = kv * p.group + c * per_item;
      const int64_t g = std::min(per_item, p.group - c * per_item);
      const int64_t s = lay.token_seq[t];
      const int64_t q_len = lay.qsl[s + 1] - lay.qsl[s];
      const int64_t n_ctx = lay.seq_lens[s] - q_len + (t - lay.qsl[s]) + 1;
      const int32_t* blocks = lay.block_tables + s * lay.max_blocks;
      cpu::AttendArgs args = query_args(t, h0);
      args.num_queries = g;
      std::fill(state.begin(), state.begin() + g, cpu::SoftmaxState{-INFINITY, 0.0f});
      std::fill(acc.begin(), acc.begin() + g * p.dv, 0.0f);
      for (int64_t blk = 0; blk * p.block_size < n_ctx; ++blk) {
        const int64_t n = std::min(p.block_size, n_ctx - blk * p.block_size);
        attend(args, key_base(blocks[blk], kv), p.key_stride, value_base(blocks[blk], kv), p.value_stride, n,
               scores.data(), state.data(), acc.data());
      }
      for (int64_t i = 0; i < g; ++i) {
        const float inv = state[i].sum > 0.0f ? 1.0f / state[i].sum : 0.0f;
        float* o = out + (t * p.out_stride) + (h0 + i) * p.dv;
        for (int64_t d = 0; d < p.dv; ++d) o[d] = acc[i * p.dv + d] * inv;
      }
    }
  });
}

}  // namespace

absl::Status CpuBackend::WriteKvCache(const Tensor& k, const Tensor& v, const AttentionMetadata& meta,
                                      const Tensor& k_cache, const Tensor& v_cache) {
  constexpr absl::string_view kOp = "WriteKvCache";
  RETURN_IF_ERROR(Expect(kOp, "k", k, DType::kF32, {"T", "Hkv", "D"}));
  const int64_t T = k.dim(0), Hkv = k.dim(1), D = k.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "v", v, DType::kF32, {T, Hkv, "Dv"}));
  const int64_t Dv = v.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "k_cache", k_cache, DType::kF32, {"NB", "BS", Hkv, D}));
  const int64_t NB = k_cache.dim(0), BS = k_cache.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "v_cache", v_cache, DType::kF32, {NB, BS, Hkv, Dv}));
  RETURN_IF_ERROR(CheckSlots(kOp, meta, T, NB, BS));
  const int32_t* slots = meta.slot_mapping.data_as<int32_t>();
  const int64_t krow = Hkv * D, vrow = Hkv * Dv;
  const float* kp = k.data_as<float>();
  const float* vp = v.data_as<float>();
  float* kc = k_cache.data_as<float>();
  float* vc = v_cache.data_as<float>();
  for (int64_t t = 0; t < T; ++t) {
    if (slots[t] < 0) continue;
    std::memcpy(kc + slots[t] * krow, kp + t * krow, krow * sizeof(float));
    std::memcpy(vc + slots[t] * vrow, vp + t * vrow, vrow * sizeof(float));
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::RopeWriteKvCache(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& positions,
                                          const Tensor& cos_sin, int32_t rotary_dim, RopeStyle style,
                                          const AttentionMetadata& meta, const Tensor& k_cache, const Tensor& v_cache) {
  constexpr absl::string_view kOp = "RopeWriteKvCache";
  RETURN_IF_ERROR(
      CheckRopeWriteKvCacheShapes(q, k, v, positions, cos_sin, rotary_dim, meta, k_cache, v_cache, DType::kF32));
  const int64_t T = q.dim(0), H = q.dim(1), D = q.dim(2), Hkv = k.dim(1), Dv = v.dim(2);
  const int64_t max_pos = cos_sin.dim(0);
  const int32_t* pos = positions.data_as<int32_t>();
  for (int64_t t = 0; t < T; ++t) {
    if (pos[t] < 0 || pos[t] >= max_pos) {
      return OpError(kOp, absl::StrCat("positions[", t, "] = ", pos[t], " is outside [0, ", max_pos, ")"));
    }
  }
  RETURN_IF_ERROR(CheckSlots(kOp, meta, T, k_cache.dim(0), k_cache.dim(1)));
  const int32_t* slots = meta.slot_mapping.data_as<int32_t>();
  const int64_t half = rotary_dim / 2, krow = Hkv * D, vrow = Hkv * Dv;
  const bool neox = style == RopeStyle::kNeox;
  const float* cs = cos_sin.data_as<float>();
  float* qp = q.data_as<float>();
  const float* kp = k.data_as<float>();
  const float* vp = v.data_as<float>();
  float* kc = k_cache.data_as<float>();
  float* vc = v_cache.data_as<float>();
  pool_.ParallelFor(T, cpu::RowGrain((H + Hkv) * rotary_dim * 2), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* c = cs + pos[t] * rotary_dim;
      for (int64_t h = 0; h < H; ++h) cpu::RotateHead(qp + (t * H + h) * D, c, c + half, half, neox);
      if (slots[t] < 0) continue;
      float* kdst = kc + slots[t] * krow;
      std::memcpy(kdst, kp + t * krow, krow * sizeof(float));
      for (int64_t h = 0; h < Hkv; ++h) cpu::RotateHead(kdst + h * D, c, c + half, half, neox);
      std::memcpy(vc + slots[t] * vrow, vp + t * vrow, vrow * sizeof(float));
    }
  });
  return absl::OkStatus();
}

absl::Status CpuBackend::PagedAttention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache,
                                        const AttentionMetadata& meta, float scale, const Tensor& out) {
  constexpr absl::string_view kOp = "PagedAttention";
  RETURN_IF_ERROR(Expect(kOp, "q", q, DType::kF32, {"T", "H", "D"}));
  const int64_t T = q.dim(0), H = q.dim(1), D = q.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "k_cache", k_cache, DType::kF32, {"NB", "BS", "Hkv", D}));
  const int64_t NB = k_cache.dim(0), BS = k_cache.dim(1), Hkv = k_cache.dim(2);
  if (Hkv == 0 || H % Hkv != 0) {
    return OpError(kOp, absl::StrCat("q has ", H, " heads, not a multiple of the cache's ", Hkv, " kv heads"));
  }
  if (BS <= 0) return OpError(kOp, "k_cache has block size 0");
  RETURN_IF_ERROR(Expect(kOp, "v_cache", v_cache, DType::kF32, {NB, BS, Hkv, "Dv"}));
  const int64_t Dv = v_cache.dim(3);
  RETURN_IF_ERROR(Expect(kOp, "out", out, DType::kF32, {T, H, Dv}));
  SeqLayout lay;
  RETURN_IF_ERROR(CheckLayout(kOp, meta, T, NB, BS, &lay));

  const float* qp = q.data_as<float>();
  const float* kc = k_cache.data_as<float>();
  const float* vc = v_cache.data_as<float>();
  const AttentionPlan plan{T, Hkv, H / Hkv, Dv, BS, Hkv * D, Hkv * Dv, H * Dv, std::max<int64_t>(1, meta.max_seq_len)};
  RunAttention(
      pool_, lay, plan,
      [&](int64_t t, int64_t h0) { return cpu::AttendArgs{qp + (t * H + h0) * D, nullptr, D, 0, D, 0, Dv, 0, scale}; },
      [&](int32_t phys, int64_t kv) { return kc + (phys * BS * Hkv + kv) * D; },
      [&](int32_t phys, int64_t kv) { return vc + (phys * BS * Hkv + kv) * Dv; }, out.data_as<float>());
  return absl::OkStatus();
}

absl::Status CpuBackend::WriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const AttentionMetadata& meta,
                                       const Tensor& cache) {
  constexpr absl::string_view kOp = "WriteMlaCache";
  RETURN_IF_ERROR(Expect(kOp, "kv_c", kv_c, DType::kF32, {"T", "L"}));
  const int64_t T = kv_c.dim(0), L = kv_c.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "k_pe", k_pe, DType::kF32, {T, "R"}));
  const int64_t R = k_pe.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "cache", cache, DType::kF32, {"NB", "BS", L + R}));
  const int64_t NB = cache.dim(0), BS = cache.dim(1);
  RETURN_IF_ERROR(CheckSlots(kOp, meta, T, NB, BS));
  const int32_t* slots = meta.slot_mapping.data_as<int32_t>();
  const float* cp = kv_c.data_as<float>();
  const float* pp = k_pe.data_as<float>();
  float* dst = cache.data_as<float>();
  for (int64_t t = 0; t < T; ++t) {
    if (slots[t] < 0) continue;
    float* row = dst + slots[t] * (L + R);
    std::memcpy(row, cp + t * L, L * sizeof(float));
    std::memcpy(row + L, pp + t * R, R * sizeof(float));
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::RopeWriteMlaCache(const Tensor& kv_c, const Tensor& k_pe, const Tensor& positions,
                                           const Tensor& cos_sin, RopeStyle style, const AttentionMetadata& meta,
                                           const Tensor& cache) {
  constexpr absl::string_view kOp = "RopeWriteMlaCache";
  RETURN_IF_ERROR(Expect(kOp, "kv_c", kv_c, DType::kF32, {"T", "L"}));
  const int64_t T = kv_c.dim(0), L = kv_c.dim(1);
  RETURN_IF_ERROR(Expect(kOp, "k_pe", k_pe, DType::kF32, {T, "R"}));
  const int64_t R = k_pe.dim(1);
  if (R <= 0 || R % 2 != 0) {
    return OpError(kOp, absl::StrCat("k_pe has ", R, " dims, expected a positive even number"));
  }
  RETURN_IF_ERROR(Expect(kOp, "positions", positions, DType::kI32, {T}));
  RETURN_IF_ERROR(Expect(kOp, "cos_sin", cos_sin, DType::kF32, {"max_position", R}));
  RETURN_IF_ERROR(Expect(kOp, "cache", cache, DType::kF32, {"NB", "BS", L + R}));
  const int64_t NB = cache.dim(0), BS = cache.dim(1), max_pos = cos_sin.dim(0);
  RETURN_IF_ERROR(CheckSlots(kOp, meta, T, NB, BS));
  const int32_t* pos = positions.data_as<int32_t>();
  for (int64_t t = 0; t < T; ++t) {
    if (pos[t] < 0 || pos[t] >= max_pos) {
      return OpError(kOp, absl::StrCat("positions[", t, "] = ", pos[t], " is outside [0, ", max_pos, ")"));
    }
  }
  const int32_t* slots = meta.slot_mapping.data_as<int32_t>();
  const float* cp = kv_c.data_as<float>();
  const float* pp = k_pe.data_as<float>();
  const float* cs = cos_sin.data_as<float>();
  float* dst = cache.data_as<float>();
  const int64_t half = R / 2;
  for (int64_t t = 0; t < T; ++t) {
    if (slots[t] < 0) continue;
    float* row = dst + slots[t] * (L + R);
    std::memcpy(row, cp + t * L, L * sizeof(float));
    const float* x = pp + t * R;
    const float* c = cs + pos[t] * R;
    const float* sn = c + half;
    float* y = row + L;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t i1 = style == RopeStyle::kNeox ? i : 2 * i;
      const int64_t i2 = style == RopeStyle::kNeox ? i + half : 2 * i + 1;
      y[i1] = x[i1] * c[i] - x[i2] * sn[i];
      y[i2] = x[i2] * c[i] + x[i1] * sn[i];
    }
  }
  return absl::OkStatus();
}

absl::Status CpuBackend::PagedMlaAttention(const Tensor& q_latent, const Tensor& q_pe, const Tensor& cache,
                                           const AttentionMetadata& meta, float scale, const Tensor& out) {
  constexpr absl::string_view kOp = "PagedMlaAttention";
  RETURN_IF_ERROR(Expect(kOp, "q_latent", q_latent, DType::kF32, {"T", "H", "L"}));
  const int64_t T = q_latent.dim(0), H = q_latent.dim(1), L = q_latent.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "q_pe", q_pe, DType::kF32, {T, H, "R"}));
  const int64_t R = q_pe.dim(2);
  RETURN_IF_ERROR(Expect(kOp, "cache", cache, DType::kF32, {"NB", "BS", L + R}));
  const int64_t NB = cache.dim(0), BS = cache.dim(1);
  if (BS <= 0) return OpError(kOp, "cache has block size 0");
  RETURN_IF_ERROR(Expect(kOp, "out", out, DType::kF32, {T, H, L}));
  SeqLayout lay;
  RETURN_IF_ERROR(CheckLayout(kOp, meta, T, NB, BS, &lay));

  const float* ql = q_latent.data_as<float>();
  const float* qr = q_pe.data_as<float>();
  const float* cp = cache.data_as<float>();
  const int64_t row = L + R;
  // One latent row per token serves every head as key ([c | pe]) and value (c).
  const AttentionPlan plan{T, 1, H, L, BS, row, row, H * L, std::max<int64_t>(1, meta.max_seq_len)};
  RunAttention(
      pool_, lay, plan,
      [&](int64_t t, int64_t h0) {
        return cpu::AttendArgs{ql + (t * H + h0) * L, qr + (t * H + h0) * R, L, R, L, R, L, 0, scale};
      },
      [&](int32_t phys, int64_t) { return cp + phys * BS * row; },
      [&](int32_t phys, int64_t) { return cp + phys * BS * row; }, out.data_as<float>());
  return absl::OkStatus();
}

}  // namespace moeserve
