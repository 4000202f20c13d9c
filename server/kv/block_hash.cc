#include "server/kv/block_hash.h"

#include "server/common/logging.h"

namespace moeserve {

BlockHash ComputeBlockHash(const BlockHash* parent, absl::Span<const int32_t> block_token_ids,
                           std::string_view cache_salt) {
  static constexpr BlockHash kRoot{};
  Sha256 hasher;
  hasher.Update((parent != nullptr ? *parent : kRoot).data(), kRoot.size());
  uint8_t buffer[256];
  size_t used = 0;
  for (int32_t token : block_token_ids) {
    const uint32_t u = static_cast<uint32_t>(token);
    for (int i = 0; i < 4; ++i) buffer[used++] = static_cast<uint8_t>(u >> (8 * i));
    if (used == sizeof buffer) {
      hasher.Update(buffer, used);
      used = 0;
    }
  }
  hasher.Update(buffer, used);
  uint8_t salt_length[8];
  const uint64_t n = cache_salt.size();
  for (int i = 0; i < 8; ++i) salt_length[i] = static_cast<uint8_t>(n >> (8 * i));
  hasher.Update(salt_length, sizeof salt_length);
  hasher.Update(cache_salt);
  return hasher.Finish();
}

void ExtendBlockHashes(absl::Span<const int32_t> token_ids, int32_t block_size, std::string_view cache_salt,
                       size_t num_blocks, std::vector<BlockHash>* hashes) {
  MS_CHECK(num_blocks * block_size <= token_ids.size());
  hashes->reserve(num_blocks);
  while (hashes->size() < num_blocks) {
    const size_t i = hashes->size();
    const BlockHash* parent = i == 0 ? nullptr : &(*hashes)[i - 1];
    hashes->push_back(ComputeBlockHash(parent, token_ids.subspan(i * block_size, block_size), cache_salt));
  }
}

}  // namespace moeserve
