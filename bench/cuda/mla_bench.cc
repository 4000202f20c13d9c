// MLA decode kernel benchmark (issue 7): achieved bandwidth over the latent rows read, against the
// device-to-device copy ceiling measured in the same process.
//
// For each case (batch B of single-token decodes, context C, H heads, L = 512, R = 64, block 16):
// the latent bytes a decode must read are B · C · (L + R) · 2 (once, whatever H); FLOPs are
// 2 · B · C · H · (L + R + L). Caches are filled with a constant (the kernel's speed does not depend
// on values), block tables are shuffled (paged layout), and two cache copies are alternated, each
// larger than L2. Timing: CUDA events around each launch after warm-up, median of --iters runs.
// Usage: moeserve-mla-bench [--iters N] [--quick]

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench/cuda/bench_ceilings.h"
#include "cuda/mla_attention.cuh"
#include "cuda/mla_plan.h"

namespace {

using moeserve::kernels::LaunchMlaAttention;
using moeserve::kernels::MlaAttentionParams;
using moeserve::kernels::MlaPlan;
using moeserve::kernels::PlanMla;
namespace mb = moeserve::bench;

constexpr int kL = 512, kR = 64, kBlock = 16;

struct Case {
  int batch, ctx, heads;
};

struct Result {
  Case c;
  MlaPlan plan;
  double ms, gbps, tflops;
};

Result RunCase(const Case& c, int num_sms, int iters) {
  const int64_t blocks_per_seq = (c.ctx + kBlock - 1) / kBlock;
  const int64_t nb = blocks_per_seq * c.batch;
  const size_t cache_bytes = static_cast<size_t>(nb) * kBlock * (kL + kR) * 2;
  constexpr int kCopies = 2;
  std::vector<void*> caches(kCopies), tables(kCopies);
  std::mt19937 rng(7);
  for (int k = 0; k < kCopies; ++k) {
    MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&caches[k], cache_bytes));
    MOESERVE_BENCH_CHECK_CUDA(cudaMemset(caches[k], 0x3c, cache_bytes));  // bf16 0x3c3c ≈ 0.0115
    std::vector<int32_t> perm(nb);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&tables[k], perm.size() * 4));
    MOESERVE_BENCH_CHECK_CUDA(cudaMemcpy(tables[k], perm.data(), perm.size() * 4, cudaMemcpyHostToDevice));
  }
  std::vector<int32_t> qsl(c.batch + 1), lens(c.batch, c.ctx);
  std::iota(qsl.begin(), qsl.end(), 0);
  void *d_qsl, *d_lens, *q, *qpe, *out, *flags;
  const size_t q_bytes = size_t{1} * c.batch * c.heads * kL * 2;
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&d_qsl, qsl.size() * 4));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&d_lens, lens.size() * 4));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemcpy(d_qsl, qsl.data(), qsl.size() * 4, cudaMemcpyHostToDevice));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemcpy(d_lens, lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&q, q_bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&qpe, q_bytes / 8));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&out, q_bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&flags, 4));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(q, 0x3c, q_bytes));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(qpe, 0x3c, q_bytes / 8));
  MOESERVE_BENCH_CHECK_CUDA(cudaMemset(flags, 0, 4));

  const MlaPlan plan = PlanMla(c.batch, c.heads, kL, kR, c.ctx, num_sms);
  void* ws = nullptr;
  if (plan.workspace_bytes() > 0) MOESERVE_BENCH_CHECK_CUDA(cudaMalloc(&ws, plan.workspace_bytes()));
  MlaAttentionParams p;
  p.q_latent = static_cast<const __nv_bfloat16*>(q);
  p.q_pe = static_cast<const __nv_bfloat16*>(qpe);
  p.out = static_cast<__nv_bfloat16*>(out);
  p.query_start_loc = static_cast<const int32_t*>(d_qsl);
  p.seq_lens = static_cast<const int32_t*>(d_lens);
  p.max_blocks_per_seq = blocks_per_seq;
  p.num_seqs = c.batch;
  p.num_tokens = c.batch;
  p.num_heads = c.heads;
  p.latent_dim = kL;
  p.rope_dim = kR;
  p.block_size = kBlock;
  p.num_blocks = nb;
  p.scale = 1.0f / 24.0f;
  p.workspace = static_cast<float*>(ws);
  p.workspace_bytes = plan.workspace_bytes();
  p.error_flags = static_cast<unsigned*>(flags);
  const double ms = mb::TimeMs(iters, nullptr, [&](int i) {
    MlaAttentionParams pi = p;
    pi.cache = static_cast<const __nv_bfloat16*>(caches[i % kCopies]);
    pi.block_tables = static_cast<const int32_t*>(tables[i % kCopies]);
    MOESERVE_BENCH_CHECK_CUDA(LaunchMlaAttention(pi, plan, nullptr));
  });
  unsigned host_flags = 0;
  MOESERVE_BENCH_CHECK_CUDA(cudaMemcpy(&host_flags, flags, 4, cudaMemcpyDeviceToHost));
  if (host_flags != 0) {
    std::fprintf(stderr, "device error flags 0x%x\n", host_flags);
    std::exit(1);
  }
  for (int k = 0; k < kCopies; ++k) {
    MOESERVE_BENCH_CHECK_CUDA(cudaFree(caches[k]));
    MOESERVE_BENCH_CHECK_CUDA(cudaFree(tables[k]));
  }
  for (void* ptr : {d_qsl, d_lens, q, qpe, out, flags, ws}) {
    if (ptr != nullptr) MOESERVE_BENCH_CHECK_CUDA(cudaFree(ptr));
  }
  const double latent_bytes = double(c.batch) * c.ctx * (kL + kR) * 2;
  const double flops = 2.0 * c.batch * c.ctx * c.heads * double(kL + kR + kL);
  return {c, plan, ms, latent_bytes / (ms * 1e-3) / 1e9, flops / (ms * 1e-3) / 1e12};
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 30;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
      iters = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
  }
  if (!mb::HasCudaDevice()) {
    std::printf("SKIP: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  MOESERVE_BENCH_CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  int num_sms = 0;
  MOESERVE_BENCH_CHECK_CUDA(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0));
  std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, num_sms, prop.l2CacheSize >> 20);
  const double copy = mb::CopyCeilingGbps(iters);
  std::printf("copy_gbps=%.0f (1 GiB D2D, read + write)\n", copy);

  std::vector<Case> cases = {{64, 4096, 128}, {128, 4096, 128}, {64, 4096, 16}, {128, 4096, 16}};
  if (!quick) {
    cases.push_back({1, 32768, 128});  // split-KV
    cases.push_back({8, 16384, 16});
  }
  std::vector<Result> results;
  for (const Case& c : cases) results.push_back(RunCase(c, num_sms, iters));

  std::printf("\nMLA decode (L=512, R=64, block 16, bf16), median of %d\n", iters);
  std::printf("%6s %6s %4s %6s %6s %9s %9s %8s %8s\n", "batch", "ctx", "H", "tiles", "splits", "us", "GB/s", "%copy",
              "TFLOP/s");
  for (const Result& r : results) {
    std::printf("%6d %6d %4d %6d %6d %9.1f %9.0f %7.1f%% %8.1f\n", r.c.batch, r.c.ctx, r.c.heads, r.plan.head_tiles,
                r.plan.num_splits, r.ms * 1e3, r.gbps, 100.0 * r.gbps / copy, r.tflops);
  }
  for (const Result& r : results) {
    std::printf("mla_decode b=%d ctx=%d H=%d gbps=%.0f pct_copy=%.1f\n", r.c.batch, r.c.ctx, r.c.heads, r.gbps,
                100.0 * r.gbps / copy);
  }
  return 0;
}
