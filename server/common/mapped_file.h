#ifndef MOESERVE_SERVER_COMMON_MAPPED_FILE_H_
#define MOESERVE_SERVER_COMMON_MAPPED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moeserve {

// A read-only memory mapping of a whole file. Immutable after Open; safe for concurrent reads.
class MappedFile {
 public:
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  absl::Span<const uint8_t> bytes() const { return {data_, size_}; }
  // Tells the kernel that `range` (a part of bytes()) is not needed for now: the whole pages inside
  // it leave this process's resident set (they stay in the page cache; a later read faults them
  // back in). For data copied elsewhere at load. Advisory: errors are ignored.
  void DropPages(absl::Span<const uint8_t> range) const;

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

// Reads a whole (small) file into a string.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);
// Writes `contents` to `path` atomically enough for tools (write then rename).
absl::Status WriteStringToFile(const std::string& path, std::string_view contents);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_COMMON_MAPPED_FILE_H_
