#ifndef MOESERVE_CUDA_ATTENTION_PLAN_H_
#define MOESERVE_CUDA_ATTENTION_PLAN_H_

// Host-side planning of paged MHA/GQA attention (flash_attention.cuh), as plain C++ so that it is
// unit-tested without a GPU: which kernels run, how many KV splits the decode kernel uses, and the
// workspace its partial outputs need.
//
// Kernels: the decode kernel takes sequences with one query token, one CTA per (sequence, kv head,
// KV split) holding every query head of the GQA group (≤ kMaxDecodeGroup); the prefill kernel
// takes the others in 64-row tiles of (position, head-of-group) rows. Both take any power-of-two
// block size up to kMaxFlashBlockSize (the KV layout's; the kernels read it as a shift) and equal
// K/V head dims of 64 or 128; anything else falls back to the v1 kernel (paged_attention.cuh).

#include <algorithm>
#include <cstdint>

namespace moeserve::kernels {

inline constexpr int kMaxFlashBlockSize = 128;  // KV cache block (tokens), a power of two
inline constexpr int kFlashTileTokens = 64;     // KV tokens per pipeline stage
inline constexpr int kFlashTileRows = 64;       // query rows per prefill CTA
inline constexpr int kMaxDecodeGroup = 16;      // query heads per kv head in one decode CTA (one mma M)
inline constexpr int kMaxDecodeSplits = 64;

struct AttentionShape {
  int64_t num_seqs = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // q·k dim
  int64_t v_head_dim = 0;
  int64_t block_size = 0;
  int64_t max_query_len = 0;
  int64_t max_seq_len = 0;
  int sm_count = 0;  // streaming multiprocessors of the device
};

struct AttentionPlan {
  bool use_flash = false;         // false: the v1 kernel
  bool run_decode = false;        // decode kernel over sequences with query length 1
  bool run_prefill = false;       // prefill kernel over the other sequences (all, without decode)
  int decode_splits = 1;          // KV splits per decode sequence (1: written straight to out)
  int64_t partition_tokens = 0;   // KV tokens per split, a multiple of kFlashTileTokens
  int64_t prefill_row_tiles = 0;  // grid.x of the prefill kernel
  int64_t workspace_bytes = 0;    // partial outputs + log-sum-exps when decode_splits > 1
};

// log2(block_size) for a power of two in [1, kMaxFlashBlockSize], else -1.
constexpr int FlashBlockShift(int64_t block_size) {
  for (int shift = 0; (int64_t{1} << shift) <= kMaxFlashBlockSize; ++shift) {
    if ((int64_t{1} << shift) == block_size) return shift;
  }
  return -1;
}

// Whether the flash kernels take this shape at all.
constexpr bool FlashAttentionSupports(int64_t head_dim, int64_t v_head_dim, int64_t block_size) {
  return FlashBlockShift(block_size) >= 0 && head_dim == v_head_dim && (head_dim == 64 || head_dim == 128);
}

// Splits per decode sequence: enough CTAs to give every SM about two (num_seqs × kv heads work
// items alone may leave most of the GPU idle at small batch), never a split shorter than one
// 64-token tile, at most kMaxDecodeSplits.
constexpr int ChooseDecodeSplits(int64_t num_seqs, int64_t num_kv_heads, int64_t max_seq_len, int sm_count) {
  const int64_t items = num_seqs * num_kv_heads;
  if (items <= 0 || max_seq_len <= kFlashTileTokens) return 1;
  const int64_t target = 2 * static_cast<int64_t>(std::max(sm_count, 1));
  int64_t splits = (target + items - 1) / items;
  const int64_t max_by_len = (max_seq_len + kFlashTileTokens - 1) / kFlashTileTokens;
  splits = std::min<int64_t>({splits, max_by_len, kMaxDecodeSplits});
  return static_cast<int>(std::max<int64_t>(splits, 1));
}

// Workspace of the split decode: per (sequence, head, split) head_dim fp32 partial outputs and one
// fp32 log-sum-exp, each array rounded up to 256 bytes.
constexpr int64_t DecodeWorkspaceBytes(int64_t num_seqs, int64_t num_heads, int splits, int64_t head_dim) {
  if (splits <= 1) return 0;
  auto round = [](int64_t b) { return (b + 255) / 256 * 256; };
  const int64_t rows = num_seqs * num_heads * splits;
  return round(rows * head_dim * 4) + round(rows * 4);
}

constexpr AttentionPlan PlanAttention(const AttentionShape& s) {
  AttentionPlan p;
  if (!FlashAttentionSupports(s.head_dim, s.v_head_dim, s.block_size) || s.num_kv_heads <= 0 ||
      s.num_heads % s.num_kv_heads != 0 || s.num_seqs <= 0) {
    return p;
  }
  p.use_flash = true;
  const int64_t group = s.num_heads / s.num_kv_heads;
  p.run_decode = group <= kMaxDecodeGroup;
  p.run_prefill = s.max_query_len > 1 || !p.run_decode;
  if (p.run_decode) {
    int splits = ChooseDecodeSplits(s.num_seqs, s.num_kv_heads, s.max_seq_len, s.sm_count);
    const int64_t per = (s.max_seq_len + splits - 1) / splits;
    p.partition_tokens =
        std::max<int64_t>(kFlashTileTokens, (per + kFlashTileTokens - 1) / kFlashTileTokens * kFlashTileTokens);
    splits = static_cast<int>(std::max<int64_t>(1, (s.max_seq_len + p.partition_tokens - 1) / p.partition_tokens));
    p.decode_splits = splits;
    p.workspace_bytes = DecodeWorkspaceBytes(s.num_seqs, s.num_heads, splits, s.head_dim);
  }
  if (p.run_prefill) {
    p.prefill_row_tiles = (std::max<int64_t>(s.max_query_len, 1) * group + kFlashTileRows - 1) / kFlashTileRows;
  }
  return p;
}

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_ATTENTION_PLAN_H_
