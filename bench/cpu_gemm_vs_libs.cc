// moeserve-cpu-gemm-vs-libs: the CPU backend's GEMM (CpuBackend::Linear, bf16 weights as stored, the
// kernel level the CPU supports: with AVX512_BF16 the bf16 dot product on activations rounded to
// bf16; "exact" is the exact path, fp32 activations and the widening kernel, CpuBackendOptions::
// exact_gemm) against two libraries from Debian on the products of the benchmark models, side by
// side in one process (issue 20):
//   - OpenBLAS cblas_sgemm, fp32 weights (the widened copy a BLAS needs: twice the bytes);
//   - oneDNN matmul, bf16 weights in the layout oneDNN picks (packed once, as a server would) and
//     the activations converted to bf16 inside the timed call (a oneDNN reorder), f32 output.
// Each shape and batch runs the four in turn, ROUNDS times, and prints the median time per call
// and each one's time over ours (> 1: ours is faster).
//
//   bench/cpu_gemm.sh            (installs the libraries, builds, runs; see there)
//   moeserve-cpu-gemm-vs-libs [--threads N] [--batches 1,4,16,64,256] [--rounds 3] [--models qwen2,v2lite]

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/backend/cpu/cpu_backend.h"

extern "C" void openblas_set_num_threads(int num_threads);  // OpenBLAS's, not in the generic cblas.h

namespace moeserve {
namespace {

struct Product {
  const char* model;
  const char* name;
  int64_t n, k;  // out[t, n] = Σ_k x[t, k] · w[n, k]
};

constexpr Product kProducts[] = {
    {"qwen2", "qkv", 1152, 896},
    {"qwen2", "o", 896, 896},
    {"qwen2", "gate_up", 9728, 896},
    {"qwen2", "down", 896, 4864},
    {"qwen2", "lm_head", 151936, 896},
    {"v2lite", "q", 3072, 2048},
    {"v2lite", "kv_a", 576, 2048},
    {"v2lite", "o", 2048, 2048},
    {"v2lite", "expert gate_up", 2816, 2048},
    {"v2lite", "expert down", 2048, 1408},
    {"v2lite", "lm_head", 129280, 2048},
};

uint16_t ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

float FromBf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Median seconds per call of `fn`, called enough times for ~0.15 s (at least once) per sample.
double SecondsPerCall(const std::function<void()>& fn, double flops) {
  const int iters = static_cast<int>(std::clamp(0.15 / (flops / 20e9), 1.0, 2000.0));
  fn();  // warm-up: first-touch, packing caches
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One oneDNN matmul of a [T, K] fp32 input against bf16 weights packed once.
class OneDnnMatmul {
 public:
  OneDnnMatmul(const dnnl::engine& eng, int64_t t, int64_t n, int64_t k, const std::vector<uint16_t>& w_nk)
      : eng_(eng), stream_(eng) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::desc src_f32({t, k}, dt::f32, tag::ab);
    const dnnl::memory::desc src_bf16({t, k}, dt::bf16, tag::ab);
    const dnnl::memory::desc w_any({k, n}, dt::bf16, tag::any);
    const dnnl::memory::desc dst({t, n}, dt::f32, tag::ab);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_bf16, w_any, dst), eng_);
    matmul_ = dnnl::matmul(pd);
    // The stored [N, K] row-major weights are [K, N] in format `ba`; packed once into pd's layout.
    dnnl::memory w_user({{k, n}, dt::bf16, tag::ba}, eng_, const_cast<uint16_t*>(w_nk.data()));
    weights_ = dnnl::memory(pd.weights_desc(), eng_);
    dnnl::reorder(w_user, weights_).execute(stream_, w_user, weights_);
    stream_.wait();
    src_f32_ = dnnl::memory(src_f32, eng_);
    src_bf16_ = dnnl::memory(src_bf16, eng_);
    dst_ = dnnl::memory(pd.dst_desc(), eng_);
    to_bf16_ = dnnl::reorder(src_f32_, src_bf16_);
  }

  float* input() { return static_cast<float*>(src_f32_.get_data_handle()); }
  const float* output() const { return static_cast<const float*>(dst_.get_data_handle()); }

  void Run() {
    to_bf16_.execute(stream_, src_f32_, src_bf16_);
    matmul_.execute(stream_, {{DNNL_ARG_SRC, src_bf16_}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst_}});
    stream_.wait();
  }

 private:
  dnnl::engine eng_;
  dnnl::stream stream_;
  dnnl::matmul matmul_;
  dnnl::reorder to_bf16_;
  dnnl::memory weights_, src_f32_, src_bf16_, dst_;
};

int Run(int threads, const std::vector<int64_t>& batches, int rounds, const std::vector<std::string>& models) {
  CpuBackend backend(threads);
  CpuBackend exact(CpuBackendOptions{.num_threads = threads, .exact_gemm = true});
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);
  const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  std::printf("threads %d (moeserve pool %d; OpenBLAS and oneDNN set to the same), oneDNN %d.%d.%d, rounds %d\n",
              threads, backend.num_threads(), dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch,
              rounds);
  std::printf("%-7s %-15s %7s %6s %4s %12s %10s %12s %12s %11s %9s %9s %10s\n", "model", "product", "N", "K", "T",
              "moeserve us", "exact us", "openblas us", "onednn us", "exact/ours", "blas/ours", "dnnl/ours",
              "max |diff|");
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  for (const Product& p : kProducts) {
    if (std::find(models.begin(), models.end(), p.model) == models.end()) continue;
    std::vector<uint16_t> w16(static_cast<size_t>(p.n * p.k));
    for (uint16_t& v : w16) v = ToBf16(dist(rng));
    std::vector<float> w32(w16.size());
    for (size_t i = 0; i < w16.size(); ++i) w32[i] = FromBf16(w16[i]);
    HostWeight hw;
    hw.dtype = DType::kBF16;
    hw.shape = Shape{p.n, p.k};
    hw.bytes = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(w16.data()), w16.size() * 2);
    absl::StatusOr<Tensor> w = backend.CreateWeightFromHost(hw);
    if (!w.ok()) {
      std::fprintf(stderr, "%s\n", w.status().ToString().c_str());
      return 1;
    }
    for (int64_t t : batches) {
      std::vector<float> x(static_cast<size_t>(t * p.k));
      for (float& v : x) v = dist(rng) * 20;
      Tensor tx = *backend.Allocate(DType::kF32, Shape{t, p.k});
      std::memcpy(tx.data(), x.data(), x.size() * 4);
      Tensor ty = *backend.Allocate(DType::kF32, Shape{t, p.n});
      std::vector<float> y_blas(static_cast<size_t>(t * p.n));
      OneDnnMatmul dnn(eng, t, p.n, p.k, w16);
      std::memcpy(dnn.input(), x.data(), x.size() * 4);
      auto ours = [&] { (void)backend.Linear(tx, *w, Tensor(), ty); };
      auto ours_exact = [&] { (void)exact.Linear(tx, *w, Tensor(), ty); };
      auto blas = [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(t), static_cast<int>(p.n),
                    static_cast<int>(p.k), 1.0f, x.data(), static_cast<int>(p.k), w32.data(), static_cast<int>(p.k),
                    0.0f, y_blas.data(), static_cast<int>(p.n));
      };
      auto onednn = [&] { dnn.Run(); };
      const double flops = 2.0 * static_cast<double>(t * p.n * p.k);
      std::vector<double> a, e, b, c;
      for (int r = 0; r < rounds; ++r) {
        e.push_back(SecondsPerCall(ours_exact, flops));
        a.push_back(SecondsPerCall(ours, flops));
        b.push_back(SecondsPerCall(blas, flops));
        c.push_back(SecondsPerCall(onednn, flops));
      }
      float diff = 0;  // ours against fp32 BLAS on the same bf16-valued weights, and oneDNN's
      const float* yo = static_cast<const float*>(ty.data());
      for (size_t i = 0; i < y_blas.size(); ++i) {
        diff = std::max({diff, std::abs(yo[i] - y_blas[i]), std::abs(dnn.output()[i] - y_blas[i])});
      }
      const double ma = Median(a), me = Median(e), mb = Median(b), mc = Median(c);
      std::printf("%-7s %-15s %7lld %6lld %4lld %12.1f %10.1f %12.1f %12.1f %11.2f %9.2f %9.2f %10.2e\n", p.model,
                  p.name, static_cast<long long>(p.n), static_cast<long long>(p.k), static_cast<long long>(t), ma * 1e6,
                  me * 1e6, mb * 1e6, mc * 1e6, me / ma, mb / ma, mc / ma, diff);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace moeserve

int main(int argc, char** argv) {
  CLI::App app{"moeserve's CPU GEMM against OpenBLAS (fp32) and oneDNN (bf16) on the benchmark models' products"};
  int threads = 2, rounds = 3;
  std::string batches_arg = "1,4,16,64,256", models_arg = "qwen2,v2lite";
  app.add_option("--threads", threads, "threads for each of the three");
  app.add_option("--batches", batches_arg, "rows T of the activations");
  app.add_option("--rounds", rounds, "alternating rounds; the median is printed");
  app.add_option("--models", models_arg, "products of: qwen2 (Qwen2-0.5B), v2lite (DeepSeek-V2-Lite)");
  CLI11_PARSE(app, argc, argv);
  std::vector<int64_t> batches;
  for (absl::string_view s : absl::StrSplit(batches_arg, ',')) {
    int64_t t = 0;
    if (!absl::SimpleAtoi(s, &t) || t < 1) {
      std::fprintf(stderr, "--batches: \"%s\" is not a positive integer\n", std::string(s).c_str());
      return 2;
    }
    batches.push_back(t);
  }
  std::vector<std::string> models = absl::StrSplit(models_arg, ',');
  return moeserve::Run(threads, batches, std::max(1, rounds), models);
}
