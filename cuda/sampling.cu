#include "cuda/sampling.cuh"

#include <cuda_bf16.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

namespace moeserve::kernels {
namespace {

constexpr int kThreads = 1024;
constexpr float kInf = __builtin_huge_valf();

// The host's ExpImpl (server/sampling/vec_math.cc), each operation rounded alone (no FMA), so the
// weights are bit-identical to the CPU's.
__device__ __forceinline__ float ExpHost(float v) {
  constexpr float kExpMinArg = -87.33654f, kExpRound = 12582912.0f, kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187045e-06f;
  const bool underflow = !(v >= kExpMinArg);
  v = underflow ? kExpMinArg : v;
  const float n = __fsub_rn(__fadd_rn(__fmul_rn(v, kLog2e), kExpRound), kExpRound);
  float r = __fsub_rn(v, __fmul_rn(n, kLn2Hi));
  r = __fsub_rn(r, __fmul_rn(n, kLn2Lo));
  float p = 1.0f / 5040.0f;
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 720.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 120.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 24.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f / 6.0f);
  p = __fadd_rn(__fmul_rn(p, r), 0.5f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f);
  p = __fadd_rn(__fmul_rn(p, r), 1.0f);
  const int32_t exponent = static_cast<int32_t>(n) + 127;
  const float result = __fmul_rn(p, __int_as_float(static_cast<int32_t>(static_cast<uint32_t>(exponent) << 23)));
  return underflow ? 0.0f : result;
}

// Order key: larger float -> larger key; -0 and +0 equal (as the host compares).
__device__ __forceinline__ uint32_t Key(float f) {
  if (f == 0.0f) f = 0.0f;
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float Load(const SampleParams& p, int64_t row, int64_t i) {
  if (p.logits_bf16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p.logits)[row * p.vocab + i]);
  return static_cast<const float*>(p.logits)[row * p.vocab + i];
}

struct Best {  // (value, id) in token order: larger value first, then lower id
  float v;
  int32_t id;
};
struct BestOp {
  __device__ Best operator()(const Best& a, const Best& b) const {
    if (a.id < 0) return b;
    if (b.id < 0) return a;
    return (a.v > b.v || (a.v == b.v && a.id < b.id)) ? a : b;
  }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return a > b ? a : b; }
};
struct MaxI {
  __device__ int32_t operator()(int32_t a, int32_t b) const { return a > b ? a : b; }
};

using ReduceF = cub::BlockReduce<float, kThreads>;
using ReduceD = cub::BlockReduce<double, kThreads>;
using ReduceI = cub::BlockReduce<int32_t, kThreads>;
using ReduceB = cub::BlockReduce<Best, kThreads>;
using ScanD = cub::BlockScan<double, kThreads>;
using ScanI = cub::BlockScan<int32_t, kThreads>;

struct Shared {
  union {
    typename ReduceF::TempStorage f;
    typename ReduceD::TempStorage d;
    typename ReduceI::TempStorage i;
    typename ReduceB::TempStorage b;
    typename ScanD::TempStorage sd;
    typename ScanI::TempStorage si;
  } tmp;
  float f;
  double d;
  int32_t i;
  Best b;
};

// Block-wide results broadcast to every thread (each call synchronises twice).
template <typename T>
__device__ __forceinline__ T Broadcast(T& slot, T r) {
  if (threadIdx.x == 0) slot = r;
  __syncthreads();
  const T out = slot;
  __syncthreads();
  return out;
}
__device__ float BlockMax(Shared& sh, float v) { return Broadcast(sh.f, ReduceF(sh.tmp.f).Reduce(v, MaxOp())); }
__device__ double BlockSum(Shared& sh, double v) { return Broadcast(sh.d, ReduceD(sh.tmp.d).Sum(v)); }
__device__ int32_t BlockSumI(Shared& sh, int32_t v) { return Broadcast(sh.i, ReduceI(sh.tmp.i).Sum(v)); }
__device__ int32_t BlockMaxI(Shared& sh, int32_t v) { return Broadcast(sh.i, ReduceI(sh.tmp.i).Reduce(v, MaxI())); }
__device__ Best BlockBest(Shared& sh, Best v) { return Broadcast(sh.b, ReduceB(sh.tmp.b).Reduce(v, BestOp())); }

// A prefix of the token order: token i is in it when key > cut_key, or key == cut_key and
// id <= cut_id. All tokens: cut_key = 0, cut_id = vocab.
struct Cut {
  uint32_t key = 0;
  int32_t id = 0x7fffffff;
  __device__ bool Contains(uint32_t k, int32_t i) const { return k > key || (k == key && i <= id); }
};

__global__ void __launch_bounds__(kThreads) SampleKernel(SampleParams p) {
  __shared__ Shared sh;
  const int row = blockIdx.x;
  const SampleRowParams rp = p.rows[row];
  const int64_t V = p.vocab;
  const int tid = threadIdx.x;
  const int64_t chunk = (V + kThreads - 1) / kThreads;
  const int64_t begin = tid * chunk < V ? tid * chunk : V;
  const int64_t end = begin + chunk < V ? begin + chunk : V;
  float* s = p.scratch + row * V;
  SampleOut* out = p.out + row;

  // 0-3. Copy (masked) and edit.
  const uint32_t* mask = rp.mask_row >= 0 ? p.masks + rp.mask_row * p.mask_words : nullptr;
  for (int64_t i = tid; i < V; i += kThreads) s[i] = MaskAllows(mask, i) ? Load(p, rp.logits_row, i) : -kInf;
  __syncthreads();
  for (int e = rp.edit_begin + tid; e < rp.edit_end; e += kThreads) {
    const SampleEdit ed = p.edits[e];
    if (ed.id < 0 || ed.id >= V) continue;
    float v = s[ed.id];
    v = __fadd_rn(v, ed.bias);
    if (ed.flags & kEditSuppress) v = -kInf;
    if ((ed.flags & kEditRepetition) && rp.repetition != 1.0f) {
      v = v > 0.0f ? __fdiv_rn(v, rp.repetition) : __fmul_rn(v, rp.repetition);
    }
    if (ed.count > 0 && (rp.presence != 0.0f || rp.frequency != 0.0f)) {
      v = __fsub_rn(__fsub_rn(v, __fmul_rn(rp.frequency, static_cast<float>(ed.count))), rp.presence);
    }
    s[ed.id] = v;
  }
  __syncthreads();

  // Max and the checks.
  float m = -kInf;
  int32_t nan = 0;
  for (int64_t i = tid; i < V; i += kThreads) {
    const float v = s[i];
    if (v != v)
      nan = 1;
    else
      m = fmaxf(m, v);
  }
  m = BlockMax(sh, m);
  nan = BlockMaxI(sh, nan);
  int32_t status = kSampleOk;
  if (nan)
    status = kSampleNaN;
  else if (m == kInf)
    status = kSamplePosInf;
  else if (m == -kInf)
    status = kSampleAllExcluded;

  int32_t token = -1;
  if (status == kSampleOk && rp.greedy) {
    int32_t first = 0x7fffffff;
    for (int64_t i = tid; i < V; i += kThreads) {
      if (s[i] == m) {
        first = static_cast<int32_t>(i);
        break;
      }
    }
    token = -BlockMaxI(sh, -first);
  } else if (status == kSampleOk) {
    if (rp.temperature != 1.0f) {
      float m2 = -kInf;
      int32_t bad = 0;
      for (int64_t i = tid; i < V; i += kThreads) {
        const float v = __fdiv_rn(s[i], rp.temperature);
        s[i] = v;
        if (v != v)
          bad = 1;
        else
          m2 = fmaxf(m2, v);
      }
      m = BlockMax(sh, m2);
      bad = BlockMaxI(sh, bad);
      if (bad)
        status = kSampleNaN;
      else if (m == kInf)
        status = kSampleTempOverflow;
    }
  }
  if (status == kSampleOk && !rp.greedy) {
    const bool use_k = rp.top_k > 0 && rp.top_k < V;
    const bool use_p = rp.top_p < 1.0f;
    const bool use_min_p = rp.min_p > 0.0f;
    Cut cut;
    if (use_k) {
      // Largest key T with count(key >= T) >= k, then the ties at T that fit, in id order.
      uint32_t t = 0;
      for (int bit = 31; bit >= 0; --bit) {
        const uint32_t cand = t | (1u << bit);
        int32_t c = 0;
        for (int64_t i = tid; i < V; i += kThreads) c += Key(s[i]) >= cand;
        if (BlockSumI(sh, c) >= rp.top_k) t = cand;
      }
      int32_t above = 0, ties = 0;
      for (int64_t i = tid; i < V; i += kThreads) above += Key(s[i]) > t;
      above = BlockSumI(sh, above);
      for (int64_t i = begin; i < end; ++i) ties += Key(s[i]) == t;
      int32_t before = 0;
      ScanI(sh.tmp.si).ExclusiveSum(ties, before);
      __syncthreads();
      const int32_t need = rp.top_k - above;  // >= 1 by the choice of t
      int32_t last = -1;
      if (before < need && before + ties >= need) {
        int32_t seen = before;
        for (int64_t i = begin; i < end; ++i) {
          if (Key(s[i]) == t && ++seen == need) {
            last = static_cast<int32_t>(i);
            break;
          }
        }
      }
      cut.key = t;
      cut.id = BlockMaxI(sh, last);
      if (cut.id < 0) cut.id = 0x7fffffff;  // unreachable; keep everything at t
    }
    if (use_p) {
      double z = 0.0;
      for (int64_t i = tid; i < V; i += kThreads) {
        const uint32_t k = Key(s[i]);
        if (cut.Contains(k, static_cast<int32_t>(i))) z += ExpHost(__fsub_rn(s[i], m));
      }
      const double target = static_cast<double>(rp.top_p) * BlockSum(sh, z);
      uint32_t t = 0;
      for (int bit = 31; bit >= 0; --bit) {
        const uint32_t cand = t | (1u << bit);
        double mass = 0.0;
        for (int64_t i = tid; i < V; i += kThreads) {
          const uint32_t k = Key(s[i]);
          if (k >= cand && cut.Contains(k, static_cast<int32_t>(i))) mass += ExpHost(__fsub_rn(s[i], m));
        }
        if (BlockSum(sh, mass) >= target) t = cand;
      }
      if (t < cut.key) t = cut.key;  // only by rounding: the top-k cut holds all of Z
      double above = 0.0, ties = 0.0;
      for (int64_t i = tid; i < V; i += kThreads) {
        const uint32_t k = Key(s[i]);
        if (k > t && cut.Contains(k, static_cast<int32_t>(i))) above += ExpHost(__fsub_rn(s[i], m));
      }
      above = BlockSum(sh, above);
      for (int64_t i = begin; i < end; ++i) {
        const uint32_t k = Key(s[i]);
        if (k == t && cut.Contains(k, static_cast<int32_t>(i))) ties += ExpHost(__fsub_rn(s[i], m));
      }
      double before = 0.0;
      ScanD(sh.tmp.sd).ExclusiveSum(ties, before);
      __syncthreads();
      int32_t last = -1;
      double cum = above + before;
      for (int64_t i = begin; i < end && last < 0; ++i) {
        const uint32_t k = Key(s[i]);
        if (k == t && cut.Contains(k, static_cast<int32_t>(i))) {
          cum += ExpHost(__fsub_rn(s[i], m));
          if (cum >= target) last = static_cast<int32_t>(i);
        }
      }
      int32_t first_last = last < 0 ? 0x7fffffff : last;
      first_last = -BlockMaxI(sh, -first_last);  // the first token that reaches the target
      Cut pc;
      pc.key = t;
      if (first_last != 0x7fffffff)
        pc.id = first_last;
      else
        pc.id = t == cut.key ? cut.id : 0x7fffffff;  // rounding: keep every tie
      cut = pc;
    }
    // Kept weights into s (0 = excluded), then the draw in id order.
    double local = 0.0;
    int32_t last_kept = -1;
    for (int64_t i = begin; i < end; ++i) {
      const float x = s[i];
      float w = ExpHost(__fsub_rn(x, m));
      if (!cut.Contains(Key(x), static_cast<int32_t>(i)) || (use_min_p && !(w >= rp.min_p))) w = 0.0f;
      s[i] = w;
      local += w;
      if (w > 0.0f) last_kept = static_cast<int32_t>(i);
    }
    double before = 0.0;
    ScanD(sh.tmp.sd).ExclusiveSum(local, before);
    __syncthreads();
    const double total = BlockSum(sh, local);
    last_kept = BlockMaxI(sh, last_kept);
    if (!(total > 0.0)) {
      status = kSampleNoMass;
    } else {
      const double u = SamplingUniformKernel(rp.seed_lo, rp.seed_hi, rp.step_lo, rp.step_hi);
      const double target = u * total;
      int32_t found = 0x7fffffff;
      if (before <= target && before + local > target) {
        double cum = before;
        for (int64_t i = begin; i < end; ++i) {
          const float w = s[i];
          if (w > 0.0f) {
            cum += w;
            if (cum > target) {
              found = static_cast<int32_t>(i);
              break;
            }
          }
        }
      }
      found = -BlockMaxI(sh, -found);
      token = found == 0x7fffffff ? last_kept : found;
    }
  }

  // Logprobs of the raw logits.
  int32_t num_top = 0;
  float logprob = 0.0f;
  if (status == kSampleOk && rp.num_top_logprobs >= 0) {
    float rm = -kInf;
    int32_t bad = 0;
    for (int64_t i = tid; i < V; i += kThreads) {
      const float v = Load(p, rp.logits_row, i);
      if (v != v)
        bad = 1;
      else
        rm = fmaxf(rm, v);
    }
    rm = BlockMax(sh, rm);
    bad = BlockMaxI(sh, bad);
    if (bad || rm == kInf || rm == -kInf) {
      status = kSampleRawBad;
    } else {
      double z = 0.0;
      for (int64_t i = tid; i < V; i += kThreads) z += ExpHost(__fsub_rn(Load(p, rp.logits_row, i), rm));
      const double log_z = static_cast<double>(rm) + log(BlockSum(sh, z));
      logprob = static_cast<float>(static_cast<double>(Load(p, rp.logits_row, token)) - log_z);
      num_top = min(rp.num_top_logprobs, p.max_top);
      if (num_top > V) num_top = static_cast<int32_t>(V);
      Best prev{kInf, -1};
      for (int n = 0; n < num_top; ++n) {
        Best b{-kInf, -1};
        for (int64_t i = tid; i < V; i += kThreads) {
          const float v = Load(p, rp.logits_row, i);
          const int32_t id = static_cast<int32_t>(i);
          const bool after = prev.id < 0 || v < prev.v || (v == prev.v && id > prev.id);
          if (after) b = BestOp()(b, Best{v, id});
        }
        b = BlockBest(sh, b);
        if (tid == 0) {
          p.top_ids[row * p.max_top + n] = b.id;
          p.top_logprobs[row * p.max_top + n] = static_cast<float>(static_cast<double>(b.v) - log_z);
        }
        prev = b;
      }
    }
  }
  if (tid == 0) {
    out->token = status == kSampleOk ? token : -1;
    out->status = status;
    out->logprob = logprob;
    out->num_top = num_top;
  }
}

}  // namespace

cudaError_t LaunchSample(const SampleParams& p, cudaStream_t stream) {
  if (p.num_rows == 0) return cudaSuccess;
  if (p.vocab <= 0 || p.vocab > (int64_t{1} << 30) || p.rows == nullptr || p.out == nullptr || p.scratch == nullptr ||
      p.logits == nullptr || (p.max_top > 0 && (p.top_ids == nullptr || p.top_logprobs == nullptr)) ||
      (p.masks != nullptr && p.mask_words * 32 < p.vocab)) {
    return cudaErrorInvalidValue;
  }
  SampleKernel<<<p.num_rows, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
