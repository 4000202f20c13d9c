// moeserve-cpu-linear-bench: times CpuBackend::Linear on decode- and prefill-shaped products.
//   build/bin/moeserve-cpu-linear-bench [num_threads]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "server/backend/cpu/cpu_backend.h"

int main(int argc, char** argv) {
  using namespace moeserve;
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  CpuBackend b(threads);
  struct Case {
    int64_t T, in, out;
  };
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::printf("threads=%d\n", b.num_threads());
  for (Case c : {Case{1, 64, 172}, Case{1, 512, 64}, Case{1, 2048, 2048}, Case{1, 4096, 4096}, Case{16, 2048, 2048},
                 Case{128, 1024, 1024}, Case{512, 4096, 4096}}) {
    std::vector<float> x(c.T * c.in), w(c.out * c.in);
    for (auto& v : x) v = dist(rng);
    for (auto& v : w) v = dist(rng);
    Tensor tx = *b.CreateWeight(x, Shape{c.T, c.in});
    Tensor tw = *b.CreateWeight(w, Shape{c.out, c.in});
    Tensor ty = *b.Allocate(DType::kF32, Shape{c.T, c.out});
    const double flops = 2.0 * c.T * c.in * c.out;
    int iters = static_cast<int>(std::max(1.0, std::min(20000.0, 2e9 / flops)));
    if (!b.Linear(tx, tw, Tensor(), ty).ok()) return 1;  // warm up
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) (void)b.Linear(tx, tw, Tensor(), ty);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("T=%-4lld in=%-5lld out=%-5lld  %10.2f us/call  %7.2f GFLOP/s\n", static_cast<long long>(c.T),
                static_cast<long long>(c.in), static_cast<long long>(c.out), 1e6 * s / iters, flops * iters / s / 1e9);
  }
  return 0;
}
