#ifndef MOESERVE_SERVER_MODEL_CHECKPOINT_H_
#define MOESERVE_SERVER_MODEL_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/model/safetensors.h"

namespace moeserve {

struct CheckpointOptions {
  // Block size of FP8 weight scales, config.json's quantization_config.weight_block_size
  // ([rows, cols]); DeepSeek-V3 uses [128, 128].
  int64_t fp8_block_rows = 128;
  int64_t fp8_block_cols = 128;
};

// The weights of a Hugging Face model directory. Open looks, in order, for
//   1. model.safetensors.index.json: its "weight_map" names the shard of every tensor;
//   2. model.safetensors;
//   3. every *.safetensors file in the directory (a tensor name may appear only once).
// All shards are memory-mapped and their headers validated at Open.
//
// Immutable after Open; safe for concurrent use.
class Checkpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir,
                                                          const CheckpointOptions& options = {});
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  const std::string& dir() const { return dir_; }
  bool Has(std::string_view name) const;
  // NotFound naming the tensor and the directory when absent.
  absl::StatusOr<const TensorInfo*> Info(std::string_view name) const;
  // The raw little-endian bytes of tensor `name`, for loading without conversion.
  absl::StatusOr<absl::Span<const uint8_t>> RawData(std::string_view name) const;
  std::vector<std::string> TensorNames() const;  // sorted

  // Tensor `name` as fp32, row-major. Its shape must equal `expected_shape` (InvalidArgument naming
  // both otherwise). F32, BF16 and F16 convert exactly. F8_E4M3 tensors must be 2-D with a
  // "<name>_scale_inv" tensor (F32, BF16 or F16) of shape
  // [ceil(rows / block_rows), ceil(cols / block_cols)]; value[r][c] = fp8[r][c] *
  // scale_inv[r / block_rows][c / block_cols].
  absl::StatusOr<std::vector<float>> LoadF32(std::string_view name, absl::Span<const int64_t> expected_shape) const;
  // The slice [begin, begin + count) along dimension `dim` of tensor `name` as LoadF32 would give
  // it (the narrowed tensor, row-major), converting only the slice's elements of the mapped file
  // (a rank's shard of a weight). InvalidArgument for a slice outside the tensor.
  absl::StatusOr<std::vector<float>> LoadF32Slice(std::string_view name, absl::Span<const int64_t> expected_shape,
                                                  int dim, int64_t begin, int64_t count) const;

  // Keeps the mapping that holds tensor `name`'s RawData() alive while held (even past this
  // object), so weights can be used in place; null for an unknown name.
  std::shared_ptr<const void> Mapping(std::string_view name) const;
  // The mapped pages of tensor `name` leave the resident set (its bytes were copied elsewhere);
  // see MappedFile::DropPages. No-op for an unknown name.
  void DropPages(std::string_view name) const;

 private:
  struct Entry {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };

  Checkpoint(std::string dir, CheckpointOptions options) : dir_(std::move(dir)), options_(options) {}
  absl::Status AddFile(std::unique_ptr<SafetensorsFile> file);
  absl::StatusOr<Entry> Find(std::string_view name) const;

  std::string dir_;
  CheckpointOptions options_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  absl::flat_hash_map<std::string, Entry> tensors_;
};

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_CHECKPOINT_H_
