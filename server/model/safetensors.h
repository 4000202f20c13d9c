#ifndef MOESERVE_SERVER_MODEL_SAFETENSORS_H_
#define MOESERVE_SERVER_MODEL_SAFETENSORS_H_

// Reading and writing the safetensors format:
//   [8 bytes: little-endian u64 N][N bytes: JSON header][data section]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data section) and may hold "__metadata__": {string: string}.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/backend/tensor.h"
#include "server/common/mapped_file.h"

namespace moeserve {

// Every dtype the safetensors format names (except sub-byte ones). Files may hold any of them; only
// those with a moeserve DType (see ToDType) can be loaded.
enum class SafetensorsDType : uint8_t {
  kBool,
  kU8,
  kI8,
  kI16,
  kU16,
  kI32,
  kU32,
  kI64,
  kU64,
  kF8E4M3,
  kF8E5M2,
  kF8E8M0,
  kF16,
  kBF16,
  kF32,
  kF64,
};

std::string_view SafetensorsDTypeName(SafetensorsDType dtype);  // "BF16"
size_t SafetensorsDTypeSize(SafetensorsDType dtype);
std::optional<SafetensorsDType> SafetensorsDTypeFromName(std::string_view name);
// The moeserve DType of `dtype`, or nullopt when moeserve has none (F64, I16, BOOL, ...).
std::optional<DType> ToDType(SafetensorsDType dtype);
SafetensorsDType ToSafetensorsDType(DType dtype);

// One tensor of a safetensors file, validated: numel * element size == nbytes, and the bytes lie
// inside the file without overlapping another tensor.
struct TensorInfo {
  std::string name;
  SafetensorsDType file_dtype = SafetensorsDType::kF32;
  std::vector<int64_t> shape;  // any rank; [] is a scalar
  int64_t numel = 0;
  uint64_t offset = 0;  // absolute byte offset of the data in the file
  uint64_t nbytes = 0;

  std::optional<DType> dtype() const { return ToDType(file_dtype); }
  std::string ShapeString() const;  // "[64, 172]"
};

struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + N: where the data section starts
};

// Headers longer than this are rejected (the reference implementation uses the same bound).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Parses and validates the header of a safetensors file given all of its bytes. Pure; never throws.
// Tensors of any recognised dtype are accepted (loading decides what it supports); unknown dtype
// names, bad types, negative or overflowing shapes, offsets that disagree with the shape, lie
// outside the data section or overlap, and duplicate names are errors that name `file_name`, the
// tensor and the reason.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::Span<const uint8_t> file, std::string_view file_name);

// A memory-mapped, validated safetensors file. Immutable after Open; safe for concurrent use.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // nullptr when the file has no tensor `name`.
  const TensorInfo* Find(std::string_view name) const;
  // The raw little-endian bytes of `info`. No alignment is guaranteed.
  // REQUIRES: `info` is one of tensors().
  absl::Span<const uint8_t> Data(const TensorInfo& info) const;
  // Keeps the mapping (and so every Data() span) alive for as long as it is held, even past this
  // object: weights can then be used in place.
  std::shared_ptr<const void> mapping() const { return file_; }
  // MappedFile::DropPages over the bytes of `info`.
  void DropPages(const TensorInfo& info) const { file_->DropPages(Data(info)); }

 private:
  SafetensorsFile(std::shared_ptr<const MappedFile> file, SafetensorsHeader header);

  std::shared_ptr<const MappedFile> file_;
  SafetensorsHeader header_;
  absl::flat_hash_map<std::string, size_t> index_;  // name -> position in header_.tensors
};

// A tensor in host memory, to be written. `data` holds numel * DTypeSize(dtype) little-endian bytes.
struct HostTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// Writes `tensors` (in the given order, contiguous) to `path` via a temporary file and a rename.
// The header is padded with spaces to a multiple of 8 bytes, as the reference implementation does.
// Names must be unique, non-empty and not "__metadata__".
absl::Status WriteSafetensors(const std::string& path, absl::Span<const HostTensor> tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_SAFETENSORS_H_
