#ifndef MOESERVE_SERVER_KV_BLOCK_HASH_H_
#define MOESERVE_SERVER_KV_BLOCK_HASH_H_

// Prefix-cache keys of full KV blocks. The key of block i is
//   SHA-256(key of block i-1 (32 zero bytes for block 0) || token ids of block i as little-endian
//           int32 || u64 little-endian salt length || cache_salt)
// so two blocks share a key only when the whole prefix up to and including them, and the salt, are
// equal. A 256-bit cryptographic hash is used because a collision would silently serve one
// request another's attention state.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/types/span.h"
#include "server/common/sha256.h"

namespace moeserve {

using BlockHash = Sha256Digest;

// Hash functor for containers keyed by BlockHash: the key is already uniform, take 8 bytes.
struct BlockHashHasher {
  size_t operator()(const BlockHash& hash) const {
    uint64_t v;
    std::memcpy(&v, hash.data(), sizeof v);
    return static_cast<size_t>(v);
  }
};

// REQUIRES: parent is null for the first block of a sequence.
BlockHash ComputeBlockHash(const BlockHash* parent, absl::Span<const int32_t> block_token_ids,
                           std::string_view cache_salt);

// Extends `hashes` (the keys of blocks 0..hashes->size()-1 of `token_ids`) until it covers
// `num_blocks` full blocks. REQUIRES: num_blocks * block_size <= token_ids.size().
void ExtendBlockHashes(absl::Span<const int32_t> token_ids, int32_t block_size, std::string_view cache_salt,
                       size_t num_blocks, std::vector<BlockHash>* hashes);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_KV_BLOCK_HASH_H_
