#ifndef MOESERVE_CUDA_SAMPLING_CUH_
#define MOESERVE_CUDA_SAMPLING_CUH_

// Token sampling on the device: the host Sampler's algorithm (server/sampling/sampler.h is the
// specification) run per row by one 1024-thread block, so that only the chosen ids (and requested
// logprobs) cross to the host.
//
// Per row: s = fp32(logits row), -inf where the row's structured-output bitmask clears the id
// (the host's step 0, ApplyTokenMask); sparse edits (logit bias, min_tokens suppression, repetition /
// frequency / presence penalties; ids unique per row) with the host's exact fp32 operations (no FMA
// contraction); max / NaN / +inf checks; greedy argmax (ties to the lowest id) or: x = s / T (IEEE
// division), w = exp(x - max) with the host's polynomial exp (bit-identical), top-k and top-p as
// prefix cuts in token order (bisection on the 32-bit order key, ties resolved in id order),
// min-p, then the draw u = Philox4x32-10(seed, step) (philox.h's scheme) over the kept weights in
// id order (double sums: a different association than the host's, so a draw can differ only when
// u * total is within rounding of a token boundary). Logprobs of the raw logits: the chosen
// token's and the top n (ties to the lower id).
//
// Cost per row: a few dozen passes over the vocabulary from L2-resident scratch (the top-k/top-p
// bisections are 32 passes each); meant for correctness first, then tuning.

#include <cuda_runtime.h>

#include <cstdint>

#ifdef __CUDACC__
#define MOESERVE_HD __host__ __device__
#else
#define MOESERVE_HD
#endif

namespace moeserve::kernels {

// One sparse edit of a row's logits, applied in the host order: bias, suppression, repetition,
// then frequency/presence.
struct SampleEdit {
  int32_t id = 0;
  float bias = 0.0f;  // added (0: none)
  int32_t flags = 0;  // kEditSuppress | kEditRepetition
  int32_t count = 0;  // occurrences in the output (frequency/presence), 0: none
};
constexpr int32_t kEditSuppress = 1;    // -inf (min_tokens)
constexpr int32_t kEditRepetition = 2;  // in prompt or output: repetition penalty applies

struct SampleRowParams {
  int32_t logits_row = 0;  // row of the logits matrix
  int32_t greedy = 0;      // 1: argmax, the filters and temperature are ignored
  float temperature = 1.0f;
  int32_t top_k = 0;   // off when <= 0 or >= vocab
  float top_p = 1.0f;  // off when >= 1
  float min_p = 0.0f;  // off when <= 0
  float repetition = 1.0f, presence = 0.0f, frequency = 0.0f;
  uint32_t seed_lo = 0, seed_hi = 0;  // Philox key
  uint32_t step_lo = 0, step_hi = 0;  // Philox counter: the output position
  int32_t edit_begin = 0, edit_end = 0;
  int32_t num_top_logprobs = -1;  // -1: no logprobs; >= 0: the token's and this many alternatives
  int32_t mask_row = -1;          // row of SampleParams::masks; -1: every token allowed
};

enum SampleStatus : int32_t {
  kSampleOk = 0,
  kSampleNaN = 1,           // the processed logits hold NaN
  kSamplePosInf = 2,        // ... +inf
  kSampleAllExcluded = 3,   // every processed logit is -inf
  kSampleNoMass = 4,        // every kept weight is zero
  kSampleTempOverflow = 5,  // logits / temperature hold +inf
  kSampleRawBad = 6,        // the raw logits (logprobs) hold NaN/+inf or are all -inf
};

struct SampleOut {
  int32_t token = -1;
  int32_t status = 0;
  float logprob = 0.0f;
  int32_t num_top = 0;
};

struct SampleParams {
  const void* logits = nullptr;  // [rows, vocab] f32 or bf16
  bool logits_bf16 = true;
  int64_t vocab = 0;
  int32_t num_rows = 0;
  const SampleRowParams* rows = nullptr;  // [num_rows]
  const SampleEdit* edits = nullptr;      // indexed by rows[r].edit_begin/end
  float* scratch = nullptr;               // [num_rows, vocab]
  SampleOut* out = nullptr;               // [num_rows]
  int32_t* top_ids = nullptr;             // [num_rows, max_top]
  float* top_logprobs = nullptr;          // [num_rows, max_top]
  int32_t max_top = 0;
  // Structured output: [mask rows, mask_words] bitmasks, bit (id % 32) of word (id / 32) set when
  // id may be sampled; mask_words >= (vocab + 31) / 32. May be null when no row has a mask.
  const uint32_t* masks = nullptr;
  int64_t mask_words = 0;
};

cudaError_t LaunchSample(const SampleParams& p, cudaStream_t stream);

// Whether a row's bitmask allows token i (null: every token), as ApplyTokenMask reads it.
MOESERVE_HD inline bool MaskAllows(const uint32_t* mask, int64_t i) {
  return mask == nullptr || ((mask[i >> 5] >> (i & 31)) & 1u) != 0;
}

// Philox4x32-10 and the draw's uniform, line for line as server/sampling/philox.h (host tests
// compare the two).
MOESERVE_HD inline void Philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const uint64_t p0 = uint64_t{0xD2511F53u} * c[0];
    const uint64_t p1 = uint64_t{0xCD9E8D57u} * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
  }
}

MOESERVE_HD inline double SamplingUniformKernel(uint32_t seed_lo, uint32_t seed_hi, uint32_t step_lo,
                                                uint32_t step_hi) {
  uint32_t c[4] = {step_lo, step_hi, 0u, 0u};
  Philox4x32_10(c, seed_lo, seed_hi);
  const uint64_t bits = (uint64_t{c[1]} << 32 | c[0]) >> 11;
  return static_cast<double>(bits) * 0x1.0p-53;
}

}  // namespace moeserve::kernels

#endif  // MOESERVE_CUDA_SAMPLING_CUH_
