#include "server/kv/kv_layout.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moeserve {

absl::Status KvLayout::Validate() const {
  if (block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("KV layout: block_size must be >= 1, got ", block_size));
  }
  if (num_blocks < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV layout: num_blocks must be >= 2 (block 0 is the null block), got ", num_blocks));
  }
  if (spec.num_layers < 1 || spec.bytes_per_token_per_layer < 1) {
    return absl::InvalidArgumentError(absl::StrCat("KV layout: the spec needs layers and bytes, got ", spec.num_layers,
                                                   " layers x ", spec.bytes_per_token_per_layer, " B/token"));
  }
  return absl::OkStatus();
}

std::string KvLayout::ToString() const {
  return absl::StrFormat("%d blocks x %d tokens, %d layers x %d B/token = %.2f GiB", num_blocks, block_size,
                         spec.num_layers, spec.bytes_per_token_per_layer,
                         static_cast<double>(total_bytes()) / (1 << 30));
}

}  // namespace moeserve
