#ifndef MOESERVE_SERVER_SAMPLING_DEVICE_SAMPLING_H_
#define MOESERVE_SERVER_SAMPLING_DEVICE_SAMPLING_H_

// Sampling on the device (Backend::SampleTokens, issue 6): turns a step's sampling rows into a
// SamplingBatch (sparse logit-bias and penalty edits per row, structured-output masks, the Philox
// key/counter of philox.h) and the device's results into SampleResults. The host Sampler stays the
// reference and the fallback: rows go to the host when the backend has no device sampler (the
// CPU) or a row needs what the device path does not take (min_tokens suppression still active on
// a row without a mask, or a prompt/output id outside the vocabulary, which the host reports per
// row).

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/backend/backend.h"
#include "server/sampling/sampler.h"
#include "server/sampling/sampling_row.h"

namespace moeserve {

// False when the row must be sampled on the host (see above).
bool DeviceSamplingSupports(const SamplingRow& in, int32_t vocab_size);

// Row r samples logits row r; a row's allowed_tokens go along as its mask. REQUIRES:
// DeviceSamplingSupports for every row.
SamplingBatch BuildSamplingBatch(absl::Span<const SamplingRow> rows, int32_t vocab_size);

// The device's per-row results as the host Sampler reports them.
void ToSampleResults(absl::Span<const SampledToken> sampled, absl::Span<const SamplingRow> rows,
                     std::vector<SampleResult>* results);

// Samples every row on the device when the backend can and every row is supported; returns false
// (nothing done) otherwise. logits [rows.size(), vocab].
absl::StatusOr<bool> SampleOnDevice(Backend* backend, const Tensor& logits, absl::Span<const SamplingRow> rows,
                                    std::vector<SampleResult>* results);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_SAMPLING_DEVICE_SAMPLING_H_
