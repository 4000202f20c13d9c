// CPU vs CUDA parity harness for every Backend op (in the spirit of llama.cpp's test-backend-ops):
// runs each case group of parity_*.cc and prints one line per case (parity_harness.h).
// Exits 1 on any failure, 77 (CTest SKIP_RETURN_CODE) without a CUDA device.
// Usage: backend_parity [--filter SUBSTRING] [--seed N]

#include <cstdio>
#include <cstring>
#include <string>

#include "server/backend/registry.h"
#include "tests/cuda/parity_harness.h"

int main(int argc, char** argv) {
  using namespace moeserve;
  parity::Harness h;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
      h.filter = argv[++i];
    else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
      h.rng.seed(std::stoul(argv[++i]));
  }
  auto gpu = CreateBackend({.device = "cuda"});
  if (!gpu.ok()) {
    std::printf("SKIP: no CUDA backend here: %s\n", gpu.status().ToString().c_str());
    return 77;
  }
  auto cpu = CreateBackend({.device = "cpu", .exact_cpu_gemm = true});  // the exact path as the reference
  if (!cpu.ok()) parity::Die(cpu.status(), "cpu backend");
  h.cpu = std::move(*cpu);
  h.gpu = std::move(*gpu);
  parity::RowOpCases(h);
  parity::AttentionCases(h);
  parity::MlaCases(h);
  parity::MoeCases(h);
  parity::MoeW8A8Cases(h);
  parity::SamplingCases(h);
  PARITY_CHECK_OK(h.gpu->Synchronize());
  std::printf("%d passed, %d failed\n", h.passed, h.failed);
  return h.failed == 0 ? 0 : 1;
}
