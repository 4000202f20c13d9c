#include "server/backend/cpu/cpu_kernels.h"

#include <atomic>

namespace moeserve::cpu {
namespace {

std::atomic<const CpuKernels*> forced{nullptr};

bool HasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

bool HasAvx512() {
  __builtin_cpu_init();
  return HasAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

}  // namespace

std::vector<const CpuKernels*> AvailableKernels() {
  std::vector<const CpuKernels*> all = {&KernelsBaseline()};
  if (HasAvx2()) all.push_back(&KernelsAvx2());
  if (HasAvx512()) all.push_back(&KernelsAvx512());
  return all;
}

const CpuKernels& Kernels() {
  if (const CpuKernels* k = forced.load(std::memory_order_relaxed)) return *k;
  static const CpuKernels* const best = AvailableKernels().back();
  return *best;
}

void ForceKernelsForTesting(const CpuKernels* k) { forced.store(k); }

}  // namespace moeserve::cpu
