// libFuzzer target for ParseSafetensorsHeader. Besides crashes and sanitizer reports, it aborts when
// an accepted header breaks the parser's promises: every tensor's bytes lie inside the data section,
// agree with its shape and dtype, and overlap no other tensor's; names are unique. Rejections must
// name the file.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "server/model/safetensors.h"

namespace {

void Fail(const char* what) {
  std::fprintf(stderr, "safetensors_header_fuzz: invariant broken: %s\n", what);
  std::abort();
}

void CheckAccepted(const moeserve::SafetensorsHeader& h, size_t size) {
  if (h.data_offset < 8 || h.data_offset > size) Fail("data_offset outside the file");
  std::set<std::string> names;
  uint64_t furthest_end = h.data_offset;
  uint64_t prev_offset = 0;
  for (const moeserve::TensorInfo& t : h.tensors) {
    if (!names.insert(t.name).second) Fail("duplicate name accepted");
    if (t.name == "__metadata__") Fail("__metadata__ taken as a tensor");
    if (t.offset < h.data_offset) Fail("tensor starts before the data section");
    if (t.nbytes > size || t.offset > size - t.nbytes) Fail("tensor ends past the file");
    if (t.offset < prev_offset) Fail("tensors not in offset order");
    prev_offset = t.offset;
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) Fail("negative dimension accepted");
      numel *= d;  // cannot overflow when the byte count fits in the file
    }
    if (numel != t.numel) Fail("numel disagrees with shape");
    if (static_cast<uint64_t>(numel) * moeserve::SafetensorsDTypeSize(t.file_dtype) != t.nbytes) {
      Fail("nbytes disagrees with shape and dtype");
    }
    if (t.nbytes == 0) continue;
    if (t.offset < furthest_end) Fail("overlapping tensors accepted");
    furthest_end = t.offset + t.nbytes;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr char kName[] = "fuzz.safetensors";
  const auto header = moeserve::ParseSafetensorsHeader({data, size}, kName);
  if (header.ok()) {
    CheckAccepted(*header, size);
  } else if (header.status().message().substr(0, sizeof kName - 1) != kName) {
    Fail("error message does not name the file");
  }
  return 0;
}
