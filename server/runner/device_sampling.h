#ifndef MOESERVE_SERVER_RUNNER_DEVICE_SAMPLING_H_
#define MOESERVE_SERVER_RUNNER_DEVICE_SAMPLING_H_

// The model runner's hook for sampling on the device (Backend::SampleTokens, issue 6): turns the
// step's sampling rows into a SamplingBatch (sparse logit-bias and penalty edits per row, the
// Philox key/counter of philox.h) and the device's results into SampleResults. The host Sampler
// stays the reference and the fallback: a step goes to the host when the backend has no device
// sampler (the CPU) or a row needs what the device path does not take (min_tokens suppression
// still active, or a prompt/output id outside the vocabulary, which the host reports per row).

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/sampling/sampler.h"
#include "server/scheduler/scheduler.h"

namespace moeserve {

struct DeviceSampleInput {
  const SamplingParams* params = nullptr;
  absl::Span<const int32_t> prompt_token_ids;
  absl::Span<const int32_t> output_token_ids;
  uint64_t seed = 0;
};

// False when the row must be sampled on the host (see above).
bool DeviceSamplingSupports(const DeviceSampleInput& in, int32_t vocab_size);

// Row r samples logits row r. REQUIRES: DeviceSamplingSupports for every row.
SamplingBatch BuildSamplingBatch(absl::Span<const DeviceSampleInput> rows);

// The device's per-row results as the host Sampler reports them.
void ToSampleResults(absl::Span<const SampledToken> sampled, absl::Span<const DeviceSampleInput> rows,
                     std::vector<SampleResult>* results);

// Samples every row on the device when the backend can and every row is supported; returns false
// (nothing done) otherwise. logits [rows.size(), vocab].
absl::StatusOr<bool> SampleOnDevice(Backend* backend, const Tensor& logits,
                                    absl::Span<const DeviceSampleInput> rows,
                                    std::vector<SampleResult>* results);

struct SamplingInput;  // model_runner.h

// The model runner's hook: the sampling entries of `step` (inputs parallel to step.scheduled,
// logits row r = the r-th sampling entry) through SampleOnDevice; on true, (*results)[i] holds
// entry i's sample (token -1 for entries that do not sample).
absl::StatusOr<bool> SampleStepOnDevice(Backend* backend, const Tensor& logits, const SchedulerOutput& step,
                                        absl::Span<const SamplingInput> inputs,
                                        std::vector<SampleResult>* results);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_RUNNER_DEVICE_SAMPLING_H_
