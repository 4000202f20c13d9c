// MoE routing. One CTA of 128 threads per token: scores and biased choices are computed in
// parallel into shared memory (softmax max/sum by block reductions); thread 0 then runs the group
// ranking and top-k selection serially, in exactly the CPU reference's order so that ties resolve
// identically (O(top_k × E) comparisons: fine for E ≤ 256 at decode batch sizes; a warp-parallel
// top-k is the next step). Bytes per token: E × 4 (logits) + 8 × top_k.

#include "cuda/common.cuh"
#include "cuda/moe_route.cuh"

namespace moeserve::kernels {
namespace {

// Serial top-k like the CPU reference: the best `k` of `n` with allowed[i], ties to the lower
// index, NaN never better.
__device__ void TopKSerial(const float* score, const uint8_t* allowed, int n, int k, int32_t* picked, uint8_t* taken) {
  for (int i = 0; i < n; ++i) taken[i] = 0;
  for (int r = 0; r < k; ++r) {
    int best = -1;
    for (int i = 0; i < n; ++i) {
      if (!allowed[i] || taken[i]) continue;
      if (best < 0 || score[i] > score[best]) best = i;
    }
    picked[r] = best;
    if (best >= 0) taken[best] = 1;
  }
}

template <typename T>
__global__ void MoeRouteKernel(MoeRouteParams p) {
  extern __shared__ float smem[];
  const int E = p.num_experts;
  float* scores = smem;
  float* choice = scores + E;
  float* group_score = choice + E;
  int32_t* groups = reinterpret_cast<int32_t*>(group_score + p.n_group);
  uint8_t* allowed = reinterpret_cast<uint8_t*>(groups + p.n_group);
  uint8_t* taken = allowed + E;

  const int64_t t = blockIdx.x;
  const T* lg = static_cast<const T*>(p.logits) + t * E;
  if (p.scoring == MoeScoreFn::kSoftmax) {
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < E; i += blockDim.x) mx = fmaxf(mx, ToFloat(lg[i]));
    mx = BlockMax(mx);
    float sum = 0.0f;
    for (int i = threadIdx.x; i < E; i += blockDim.x) {
      const float e = expf(ToFloat(lg[i]) - mx);
      scores[i] = e;
      sum += e;
    }
    sum = BlockSum(sum);
    const float inv = 1.0f / sum;
    for (int i = threadIdx.x; i < E; i += blockDim.x) scores[i] *= inv;
  } else {
    for (int i = threadIdx.x; i < E; i += blockDim.x) scores[i] = 1.0f / (1.0f + expf(-ToFloat(lg[i])));
  }
  for (int i = threadIdx.x; i < E; i += blockDim.x) {
    choice[i] = p.correction_bias != nullptr ? scores[i] + p.correction_bias[i] : scores[i];
  }
  __syncthreads();
  if (threadIdx.x != 0) return;

  if (p.method == MoeSelect::kGreedy) {
    for (int i = 0; i < E; ++i) allowed[i] = 1;
  } else {
    const int G = p.n_group, per_group = E / G;
    for (int g = 0; g < G; ++g) {
      const float* c = choice + g * per_group;
      if (p.method == MoeSelect::kGroupLimitedGreedy) {
        float best = c[0];
        for (int i = 1; i < per_group; ++i) best = c[i] > best ? c[i] : best;  // std::max_element
        group_score[g] = best;
      } else {
        float m1 = -INFINITY, m2 = -INFINITY;
        for (int i = 0; i < per_group; ++i) {
          if (c[i] > m1) {
            m2 = m1;
            m1 = c[i];
          } else if (c[i] > m2) {
            m2 = c[i];
          }
        }
        group_score[g] = m1 + m2;
      }
    }
    for (int g = 0; g < G; ++g) allowed[g] = 1;  // every group eligible for ranking
    TopKSerial(group_score, allowed, G, p.topk_group, groups, taken);
    for (int i = 0; i < E; ++i) allowed[i] = 0;
    for (int r = 0; r < p.topk_group; ++r) {
      for (int i = 0; i < per_group; ++i) allowed[groups[r] * per_group + i] = 1;
    }
  }
  int32_t* ids = p.topk_ids + t * p.top_k;
  float* w = p.topk_weights + t * p.top_k;
  TopKSerial(choice, allowed, E, p.top_k, ids, taken);
  for (int r = 0; r < p.top_k; ++r) w[r] = ids[r] >= 0 ? scores[ids[r]] : 0.0f;
  if (p.norm_topk_prob) {
    float sum = 0.0f;
    for (int r = 0; r < p.top_k; ++r) sum += w[r];
    const float denom = sum + 1e-20f;
    for (int r = 0; r < p.top_k; ++r) w[r] /= denom;
  }
  for (int r = 0; r < p.top_k; ++r) w[r] *= p.routed_scaling_factor;
}

}  // namespace

cudaError_t LaunchMoeRoute(const MoeRouteParams& p, cudaStream_t stream) {
  if (p.tokens == 0) return cudaSuccess;
  if (p.tokens > 0x7fffffff || p.num_experts <= 0 || p.top_k <= 0 || p.n_group <= 0 || p.num_experts % p.n_group != 0) {
    return cudaErrorInvalidValue;
  }
  const int64_t smem = MoeRouteSharedBytes(p.num_experts, p.n_group);
  if (smem > 48 * 1024) return cudaErrorInvalidValue;
  const unsigned grid = static_cast<unsigned>(p.tokens);
  if (p.logits_bf16) {
    MoeRouteKernel<bf16><<<grid, 128, smem, stream>>>(p);
  } else {
    MoeRouteKernel<float><<<grid, 128, smem, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace moeserve::kernels
