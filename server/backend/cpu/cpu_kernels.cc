#include "server/backend/cpu/cpu_kernels.h"

#include <cpuid.h>

#include <atomic>

namespace moeserve::cpu {
namespace {

std::atomic<const CpuKernels*> forced{nullptr};

// F16C from CPUID leaf 1 (ECX): clang's __builtin_cpu_supports does not know "f16c" (clang 14).
bool HasF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}

bool HasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c();
}

bool HasAvx512() {
  __builtin_cpu_init();
  return HasAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

// AVX512_BF16 from CPUID leaf 7, sub-leaf 1 (EAX bit 5); the OS's saving of the AVX-512 state is
// part of HasAvx512 (__builtin_cpu_supports checks XCR0).
bool HasAvx512Bf16() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return HasAvx512() && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0 && (eax & (1u << 5)) != 0;
}

}  // namespace

std::vector<const CpuKernels*> AvailableKernels() {
  std::vector<const CpuKernels*> all = {&KernelsBaseline()};
  if (HasAvx2()) all.push_back(&KernelsAvx2());
  if (HasAvx512()) all.push_back(&KernelsAvx512());
  if (HasAvx512Bf16()) all.push_back(&KernelsAvx512Bf16());
  return all;
}

const CpuKernels& Kernels() {
  if (const CpuKernels* k = forced.load(std::memory_order_relaxed)) return *k;
  static const CpuKernels* const best = AvailableKernels().back();
  return *best;
}

void ForceKernelsForTesting(const CpuKernels* k) { forced.store(k); }

}  // namespace moeserve::cpu
