#ifndef MOESERVE_CUDA_FP8_WEIGHT_CUH_
#define MOESERVE_CUDA_FP8_WEIGHT_CUH_

// Layout of fp8 e4m3 block-scaled weights for the MoE grouped GEMM (moe_grouped_gemm.cuh). Plain
// C++ (host code, unit-tested without a GPU).
//
// The GEMM reads a weight fragment with ldmatrix as 4 bytes per thread per 16-column group and
// widens them to the two bf16x2 registers of an m16n8k16 B fragment, which hold columns
// {2q, 2q+1} and {2q+8, 2q+9} (q = lane % 4). So each group of 16 bytes is stored with logical
// column c at physical position Fp8MmaPosition(c): [0 1 8 9 | 2 3 10 11 | 4 5 12 13 | 6 7 14 15].
// Block scales are unaffected (the permutation stays inside 16-column groups).

#include <cstdint>
#include <cstring>

namespace moeserve::kernels {

constexpr int kFp8BlockSize = 128;

constexpr int Fp8MmaPosition(int c) { return c < 8 ? 4 * (c / 2) + c % 2 : 4 * ((c - 8) / 2) + 2 + c % 2; }

// Permutes `n` bytes (n % 16 == 0) of one weight row in place into the GEMM's order.
inline void PermuteFp8ForMma(uint8_t* row, int64_t n) {
  uint8_t tmp[16];
  for (int64_t g = 0; g < n; g += 16) {
    for (int c = 0; c < 16; ++c) tmp[Fp8MmaPosition(c)] = row[g + c];
    std::memcpy(row + g, tmp, 16);
  }
}

// Scale blocks of a [rows, cols] weight.
constexpr int64_t Fp8ScaleCount(int64_t rows, int64_t cols) {
  return ((rows + kFp8BlockSize - 1) / kFp8BlockSize) * ((cols + kFp8BlockSize - 1) / kFp8BlockSize);
}

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_FP8_WEIGHT_CUH_
