// MoE layer benchmark (issue 7): one DeepSeek-V2-Lite MoE layer — router Linear, MoeRoute and
// MoeExperts (permute, gate/up and down grouped GEMMs, combine) with the two shared experts fused
// as always-on experts 64 and 65 — through the CUDA backend exactly as MoeFfn runs it, with
// bf16 and fp8 (128×128 block-scaled e4m3) expert weights, against the copy and cuBLAS bf16 GEMM
// ceilings measured in the same process.
//
// Shape: hidden 2048, 64 routed experts, top-6 (softmax, greedy: V2-Lite's routing), moe
// intermediate 1408, 2 shared experts of 1408 (the MLP of 2816 split in two). Batch = tokens per
// step; 2048 is a prefill chunk (≥ 64 rows per expert: fp8 weights then run W8A8).
// Bytes: the weights of the experts the routing actually touched (distinct ids, counted on the
// host after the timed runs) + shared experts + router + x and out. Decode at batch 1 touches
// ≈ 6 experts × 17.3 MB (bf16; half in fp8) + 34.6 MB shared. FLOPs: 2·T·(8·3·d·I + E·d).
// Timing: CUDA events on the backend's stream after warm-up, median of --iters; --copies layer
// copies (≥ 1.1 GB of experts each in bf16, far beyond L2) are rotated, each with its own input,
// so no run finds its weights in L2.
// Usage: moeserve-moe-bench [--iters N] [--copies C] [--quick]

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench/cuda/bench_ceilings.h"
#include "cuda/moe_fp8_plan.h"
#include "server/backend/backend.h"
#include "server/backend/cuda/cuda_backend.h"
#include "server/common/numeric.h"

namespace {

using moeserve::Backend;
using moeserve::CudaBackend;
using moeserve::DType;
using moeserve::MoeExpertsExtras;
using moeserve::MoeRoutingParams;
using moeserve::Tensor;
using moeserve::bench::CopyCeilingGbps;
using moeserve::bench::GemmCeilingTflops;
using moeserve::bench::Median;

constexpr int64_t kD = 2048, kE = 64, kTopK = 6, kI = 1408, kShared = 2;

#define CHECK_OK(expr)                                                                          \
  do {                                                                                          \
    const absl::Status _s = (expr);                                                             \
    if (!_s.ok()) {                                                                             \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, _s.ToString().c_str()); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

template <class T>
T Take(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

// Cheap deterministic values in [-a, a] (the kernels' speed does not depend on them).
std::vector<float> Values(int64_t n, uint32_t seed, float a) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    v[i] = a * (static_cast<float>(s >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
  return v;
}

// fp8 bytes and unit-ish block scales for an [E, R, C] weight with values of about `a`.
void Fp8Values(int64_t e, int64_t r, int64_t c, uint32_t seed, std::vector<uint8_t>* bytes,
               std::vector<float>* scales) {
  bytes->resize(e * r * c);
  uint32_t s = seed * 2654435761u + 7;
  for (auto& b : *bytes) {
    s = s * 1664525u + 1013904223u;
    b = static_cast<uint8_t>((s >> 24) & 0xF7);  // never 0x7F/0xFF (NaN)
  }
  scales->assign(e * (r / 128) * (c / 128), 0.02f / 448.0f);
}

struct Layer {
  Tensor router, gate_up, down, x;  // gate_up [E + S, 2I, d], down [E + S, d, I]
};

struct Result {
  double us = 0, gbps = 0, tflops = 0;
  int64_t distinct = 0;  // routed experts touched per layer (mean over copies)
};

Result RunCase(CudaBackend* be, std::vector<Layer>& layers, bool fp8, int64_t T, int iters) {
  const MoeRoutingParams routing{.top_k = kTopK, .norm_topk_prob = false};
  std::vector<Tensor> logits, ids, weights, out;
  for (size_t c = 0; c < layers.size(); ++c) {
    logits.push_back(Take(be->Allocate(DType::kF32, {T, kE}), "alloc"));
    ids.push_back(Take(be->Allocate(DType::kI32, {T, kTopK}), "alloc"));
    weights.push_back(Take(be->Allocate(DType::kF32, {T, kTopK}), "alloc"));
    out.push_back(Take(be->Allocate(DType::kBF16, {T, kD}), "alloc"));
    // Each copy gets its own T rows of input so that routings differ between copies.
    layers[c].x = Take(be->Allocate(DType::kBF16, {T, kD}), "alloc");
    const std::vector<float> xv = Values(T * kD, 100 + static_cast<uint32_t>(c), 1.0f);
    std::vector<uint16_t> xb(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) xb[i] = moeserve::FloatToBf16(xv[i]);
    CHECK_OK(
        be->CopyFromHost(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(xb.data()), xb.size() * 2), layers[c].x));
  }
  auto layer = [&](int i) {
    const size_t c = static_cast<size_t>(i) % layers.size();
    const Layer& L = layers[c];
    CHECK_OK(be->Linear(L.x, L.router, Tensor(), logits[c]));
    CHECK_OK(be->MoeRoute(logits[c], Tensor(), routing, ids[c], weights[c]));
    MoeExpertsExtras extras;
    extras.num_shared_experts = kShared;
    CHECK_OK(be->MoeExperts(L.x, ids[c], weights[c], L.gate_up, L.down, out[c], extras));
  };
  const double ms = moeserve::bench::TimeMs(iters, be->stream(), layer);
  CHECK_OK(be->Synchronize());

  Result r;
  int64_t distinct = 0;
  for (size_t c = 0; c < layers.size(); ++c) {
    std::vector<int32_t> host(T * kTopK);
    CHECK_OK(be->CopyToHost(ids[c], absl::MakeSpan(reinterpret_cast<uint8_t*>(host.data()), host.size() * 4)));
    distinct += static_cast<int64_t>(std::set<int32_t>(host.begin(), host.end()).size());
  }
  const double experts = static_cast<double>(distinct) / layers.size();
  const double wbytes = fp8 ? 1.0 + 4.0 / (128 * 128) : 2.0;
  const double bytes = (experts + kShared) * 3 * kD * kI * wbytes + kE * kD * 2.0 + 2.0 * T * kD * 2;
  const double flops = 2.0 * T * ((kTopK + kShared) * 3.0 * kD * kI + kE * kD);
  r.us = ms * 1e3;
  r.gbps = bytes / (ms * 1e-3) / 1e9;
  r.tflops = flops / (ms * 1e-3) / 1e12;
  r.distinct = static_cast<int64_t>(experts + 0.5);
  return r;
}

std::vector<Layer> MakeLayers(CudaBackend* be, bool fp8, int copies) {
  std::vector<Layer> layers(copies);
  const std::vector<float> router = Values(kE * kD, 1, 0.05f);
  std::vector<float> gu, dn;
  std::vector<uint8_t> gu8, dn8;
  std::vector<float> gus, dns;
  if (fp8) {
    Fp8Values(kE + kShared, 2 * kI, kD, 4, &gu8, &gus);
    Fp8Values(kE + kShared, kD, kI, 5, &dn8, &dns);
  } else {
    gu = Values((kE + kShared) * 2 * kI * kD, 4, 0.02f);
    dn = Values((kE + kShared) * kD * kI, 5, 0.02f);
  }
  for (int c = 0; c < copies; ++c) {
    Layer& L = layers[c];
    // Router rows differ per copy (rotated) so each copy routes its tokens its own way.
    std::vector<float> r = router;
    std::rotate(r.begin(), r.begin() + (c * 997) % r.size(), r.end());
    L.router = Take(be->CreateWeight(r, {kE, kD}), "router");
    if (fp8) {
      L.gate_up = Take(be->CreateFp8BlockWeight(gu8, gus, {kE + kShared, 2 * kI, kD}), "fp8 gate_up");
      L.down = Take(be->CreateFp8BlockWeight(dn8, dns, {kE + kShared, kD, kI}), "fp8 down");
    } else {
      L.gate_up = Take(be->CreateWeight(gu, {kE + kShared, 2 * kI, kD}), "gate_up");
      L.down = Take(be->CreateWeight(dn, {kE + kShared, kD, kI}), "down");
    }
  }
  return layers;
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 50, copies = 4;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
      iters = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--copies") == 0 && i + 1 < argc)
      copies = std::max(1, std::atoi(argv[++i]));
    else if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
  }
  absl::StatusOr<std::unique_ptr<CudaBackend>> backend = CudaBackend::Create(0);
  if (!backend.ok()) {
    std::printf("SKIP: no CUDA device (%s)\n", backend.status().ToString().c_str());
    return 77;
  }
  CudaBackend* be = backend->get();
  cudaDeviceProp prop{};
  MOESERVE_BENCH_CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbps = CopyCeilingGbps(iters);
  const double gemm_tflops = GemmCeilingTflops(8192, std::max(5, iters / 5));
  std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  std::printf("copy_gbps=%.0f\ngemm_tflops=%.0f\n", copy_gbps, gemm_tflops);
  std::printf("DeepSeek-V2-Lite MoE layer: d %lld, E %lld, top-%lld, I %lld, %lld shared; %d copies rotated\n",
              static_cast<long long>(kD), static_cast<long long>(kE), static_cast<long long>(kTopK),
              static_cast<long long>(kI), static_cast<long long>(kShared), copies);

  std::printf("\n%-6s %5s %6s %8s %9s %8s %6s %8s %6s\n", "weight", "batch", "path", "experts", "us", "GB/s", "%copy",
              "TFLOP/s", "%gemm");
  const std::vector<int64_t> batches =
      quick ? std::vector<int64_t>{1, 128} : std::vector<int64_t>{1, 32, 128, 256, 2048};
  for (bool fp8 : {false, true}) {
    std::vector<Layer> layers = MakeLayers(be, fp8, copies);
    for (int64_t T : batches) {
      const Result r = RunCase(be, layers, fp8, T, iters);
      const char* path = !fp8                                                                    ? "bf16"
                         : moeserve::kernels::MoeUseW8A8(true, T, kTopK + kShared, kE + kShared) ? "w8a8"
                                                                                                 : "w8a16";
      std::printf("%-6s %5lld %6s %8lld %9.1f %8.0f %5.1f%% %8.1f %5.1f%%\n", fp8 ? "fp8" : "bf16",
                  static_cast<long long>(T), path, static_cast<long long>(r.distinct), r.us, r.gbps,
                  100.0 * r.gbps / copy_gbps, r.tflops, 100.0 * r.tflops / gemm_tflops);
    }
    layers.clear();
    be->ReleaseCachedMemory();
  }
  return 0;
}
