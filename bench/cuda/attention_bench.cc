// Paged MHA/GQA attention benchmark (issue 6): the flash kernels (cuda/flash_attention.cuh) against
// the two ceilings measured in the same process, a large device-to-device copy (bytes read +
// written per second) and a large bf16 cuBLAS GEMM (TFLOP/s).
//
// Decode (batch B of one-token sequences at context C, Llama-3-8B heads: H 32, Hkv 8, D 128):
// bytes = B·C·Hkv·D·2·2 of K/V read once + B·H·D·2·2 of q/out; reported as GB/s and % of copy
// (goal ≥ 85%). Prefill (causal, from empty or chunked over a cached context): FLOPs =
// 4·D·H·Σ_rows(attended positions); reported as TFLOP/s and % of the cuBLAS rate.
// Caches hold a constant (speed does not depend on values), block tables are shuffled; for small
// caches several disjoint tables rotate over a pool ≥ 512 MiB so that L2 (50 MiB) never holds the
// working set. CUDA events after warm-up, median of --iters runs.
// Usage: moeserve-attention-bench [--iters N] [--quick]

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench/cuda/bench_ceilings.h"
#include "cuda/attention_plan.h"
#include "cuda/flash_attention.cuh"

namespace {

namespace k = moeserve::kernels;
namespace mb = moeserve::bench;
constexpr int kBlock = 16;

struct Case {
  std::string label;
  int batch, ctx, q_len;  // every sequence: context ctx, the last q_len positions are queries
  int heads, kv_heads, dim;
};

struct Result {
  Case c;
  k::AttentionPlan plan;
  double ms, gbps, tflops;
};

Result RunCase(const Case& c, int num_sms, int iters) {
  const int64_t blocks_per_seq = (c.ctx + kBlock - 1) / kBlock;
  const int64_t nb = blocks_per_seq * c.batch;
  const size_t block_bytes = size_t{1} * kBlock * c.kv_heads * c.dim * 2;
  const size_t cache_bytes = nb * block_bytes;
  // Disjoint block tables over one pool, enough of them to cover ≥ 512 MiB (at most 64).
  const int tables = static_cast<int>(std::clamp<size_t>(((size_t{512} << 20) + cache_bytes - 1) / cache_bytes, 1, 64));
  const int64_t pool = nb * tables;
  void *kc, *vc;
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&kc, pool * block_bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&vc, pool * block_bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(kc, 0x3c, pool * block_bytes));  // bf16 0x3c3c ≈ 0.0115
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(vc, 0x3c, pool * block_bytes));
  std::mt19937 rng(7);
  std::vector<int32_t> perm(pool);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  int32_t* d_tables;
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&d_tables, perm.size() * 4));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemcpy(d_tables, perm.data(), perm.size() * 4, cudaMemcpyHostToDevice));
  std::vector<int32_t> qsl(c.batch + 1), lens(c.batch, c.ctx);
  for (int s = 0; s <= c.batch; ++s) qsl[s] = s * c.q_len;
  const int tokens = c.batch * c.q_len;
  int32_t *d_qsl, *d_lens;
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&d_qsl, qsl.size() * 4));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&d_lens, lens.size() * 4));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemcpy(d_qsl, qsl.data(), qsl.size() * 4, cudaMemcpyHostToDevice));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemcpy(d_lens, lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
  const size_t q_bytes = size_t{1} * tokens * c.heads * c.dim * 2;
  void *q, *out, *flags;
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&q, q_bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&out, q_bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&flags, 4));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(q, 0x3c, q_bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(flags, 0, 4));

  const k::AttentionPlan plan = k::PlanAttention({.num_seqs = c.batch,
                                                  .num_heads = c.heads,
                                                  .num_kv_heads = c.kv_heads,
                                                  .head_dim = c.dim,
                                                  .v_head_dim = c.dim,
                                                  .block_size = kBlock,
                                                  .max_query_len = c.q_len,
                                                  .max_seq_len = c.ctx,
                                                  .sm_count = num_sms});
  void* ws = nullptr;
  if (plan.workspace_bytes > 0) MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&ws, plan.workspace_bytes));
  k::FlashAttentionParams p;
  p.q = static_cast<const __nv_bfloat16*>(q);
  p.k_cache = static_cast<const __nv_bfloat16*>(kc);
  p.v_cache = static_cast<const __nv_bfloat16*>(vc);
  p.out = static_cast<__nv_bfloat16*>(out);
  p.query_start_loc = d_qsl;
  p.seq_lens = d_lens;
  p.max_blocks_per_seq = blocks_per_seq;
  p.num_seqs = c.batch;
  p.num_tokens = tokens;
  p.num_heads = c.heads;
  p.num_kv_heads = c.kv_heads;
  p.head_dim = c.dim;
  p.num_blocks = pool;
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
  p.plan = plan;
  p.workspace = ws;
  p.error_flags = static_cast<unsigned*>(flags);
  const double ms = mb::TimeMs(iters, nullptr, [&](int i) {
    k::FlashAttentionParams pi = p;
    pi.block_tables = d_tables + static_cast<int64_t>(i % tables) * nb;
    MOESERVE_BENCH_CHECK_CUDA(k::LaunchFlashAttention(pi, nullptr));
  });
  unsigned host_flags = 0;
  MOESERVE_BENCH_CHECK_CUDA(cudaMemcpy(&host_flags, flags, 4, cudaMemcpyDeviceToHost));
  if (host_flags != 0) {
    std::fprintf(stderr, "%s: device error flags 0x%x\n", c.label.c_str(), host_flags);
    std::exit(1);
  }
  // Bytes: every K/V position of every sequence once + q and out. FLOPs: QK and PV over the
  // attended (causal) positions.
  const double kv_bytes = 2.0 * c.batch * c.ctx * c.kv_heads * c.dim * 2;
  const double bytes = kv_bytes + 2.0 * q_bytes;
  double pairs = 0;
  for (int i = 0; i < c.q_len; ++i) pairs += c.ctx - c.q_len + i + 1;
  const double flops = 4.0 * c.dim * c.heads * pairs * c.batch;
  for (void* ptr : {kc, vc, static_cast<void*>(d_tables), static_cast<void*>(d_qsl), static_cast<void*>(d_lens), q, out,
                    flags, ws}) {
    if (ptr != nullptr) MOESERVE_BENCH_CHECK_CUDA(cudaFree(ptr));
  }
  return {c, plan, ms, bytes / (ms * 1e-3) / 1e9, flops / (ms * 1e-3) / 1e12};
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 50;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
      iters = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
  }
  int dev = 0, num_sms = 0;
  if (!mb::HasCudaDevice() || cudaGetDevice(&dev) != cudaSuccess) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  MOESERVE_BENCH_CHECK_CUDA(cudaGetDeviceProperties(&prop, dev));
  MOESERVE_BENCH_CHECK_CUDA(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, dev));
  const double copy_gbps = mb::CopyCeilingGbps(iters);
  const double gemm_tflops = mb::GemmCeilingTflops(8192, std::max(5, iters / 5));
  std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, num_sms, prop.l2CacheSize >> 20);
  std::printf("copy_gbps=%.0f\ngemm_tflops=%.0f\n", copy_gbps, gemm_tflops);

  std::vector<Case> cases;
  for (int b : {1, 64, 256}) {
    for (int ctx : {1024, 4096, 32768}) {
      if (quick && ctx == 32768 && b > 1) continue;
      cases.push_back({"decode", b, ctx, 1, 32, 8, 128});
    }
  }
  cases.push_back({"decode D=64 G=4", 64, 4096, 1, 32, 8, 64});
  cases.push_back({"prefill", 1, 4096, 4096, 32, 8, 128});
  cases.push_back({"prefill", 4, 2048, 2048, 32, 8, 128});
  cases.push_back({"chunk 512", 8, 8192, 512, 32, 8, 128});
  cases.push_back({"prefill D=64", 4, 2048, 2048, 32, 8, 64});

  std::printf("\n%-16s %5s %6s %5s %4s %4s %9s %8s %6s %8s %6s %6s\n", "case", "batch", "ctx", "q", "H/Hkv", "D", "us",
              "GB/s", "%copy", "TFLOP/s", "%gemm", "splits");
  for (const Case& c : cases) {
    const Result r = RunCase(c, num_sms, iters);
    char hh[16];
    std::snprintf(hh, sizeof(hh), "%d/%d", c.heads, c.kv_heads);
    std::printf("%-16s %5d %6d %5d %5s %4d %9.1f %8.0f %5.1f%% %8.1f %5.1f%% %6d\n", c.label.c_str(), c.batch, c.ctx,
                c.q_len, hh, c.dim, r.ms * 1e3, r.gbps, 100.0 * r.gbps / copy_gbps, r.tflops,
                100.0 * r.tflops / gemm_tflops, r.plan.run_decode && c.q_len == 1 ? r.plan.decode_splits : 0);
  }
  return 0;
}
