#include "server/model/forward_batch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moeserve {

void ForwardBatch::AddSequence(absl::Span<const int32_t> new_tokens, int32_t num_cached,
                               absl::Span<const int32_t> block_table, bool want_logits) {
  if (query_start_loc.empty()) query_start_loc.push_back(0);
  const int32_t n = static_cast<int32_t>(new_tokens.size());
  for (int32_t i = 0; i < n; ++i) {
    const int32_t pos = num_cached + i;
    token_ids.push_back(new_tokens[i]);
    positions.push_back(pos);
    const int32_t logical = pos / block_size;
    const int32_t block = logical < static_cast<int32_t>(block_table.size()) ? block_table[logical] : -1;
    slot_mapping.push_back(block < 0 ? -1 : block * block_size + pos % block_size);
  }
  query_start_loc.push_back(query_start_loc.back() + n);
  seq_lens.push_back(num_cached + n);
  if (want_logits && n > 0) logits_indices.push_back(query_start_loc.back() - 1);

  // Re-pack block tables to the new width if this sequence needs more blocks.
  const int32_t width = std::max<int32_t>(max_blocks_per_seq, static_cast<int32_t>(block_table.size()));
  if (width != max_blocks_per_seq) {
    std::vector<int32_t> packed(static_cast<size_t>(num_seqs() - 1) * width, 0);
    for (int32_t s = 0; s + 1 < num_seqs(); ++s) {
      std::copy_n(block_tables.begin() + static_cast<size_t>(s) * max_blocks_per_seq, max_blocks_per_seq,
                  packed.begin() + static_cast<size_t>(s) * width);
    }
    block_tables = std::move(packed);
    max_blocks_per_seq = width;
  }
  const size_t row = block_tables.size();
  block_tables.resize(row + width, 0);
  std::copy(block_table.begin(), block_table.end(), block_tables.begin() + row);
}

absl::Status ForwardBatch::Validate(int32_t num_blocks, int32_t max_position) const {
  const int32_t t = num_tokens();
  const int32_t s = num_seqs();
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat("ForwardBatch: ", parts...)); };
  if (block_size <= 0) return bad("block_size must be positive");
  if (static_cast<int32_t>(positions.size()) != t)
    return bad("positions has ", positions.size(), " entries, expected ", t);
  if (static_cast<int32_t>(slot_mapping.size()) != t)
    return bad("slot_mapping has ", slot_mapping.size(), " entries, expected ", t);
  if (static_cast<int32_t>(query_start_loc.size()) != s + 1)
    return bad("query_start_loc must have num_seqs + 1 entries");
  if (query_start_loc[0] != 0 || query_start_loc[s] != t) return bad("query_start_loc must run from 0 to num_tokens");
  if (static_cast<int64_t>(block_tables.size()) != static_cast<int64_t>(s) * max_blocks_per_seq) {
    return bad("block_tables has ", block_tables.size(), " entries, expected ", s, " x ", max_blocks_per_seq);
  }
  for (int32_t i = 0; i < s; ++i) {
    const int32_t q = query_start_loc[i + 1] - query_start_loc[i];
    if (q < 0) return bad("query_start_loc must be non-decreasing");
    if (seq_lens[i] < q) return bad("seq_lens[", i, "] = ", seq_lens[i], " is shorter than its ", q, " new tokens");
    if (seq_lens[i] > max_position)
      return bad("seq_lens[", i, "] = ", seq_lens[i], " exceeds the model's ", max_position, " positions");
    if (seq_lens[i] > static_cast<int64_t>(max_blocks_per_seq) * block_size) {
      return bad("sequence ", i, " needs ", seq_lens[i], " slots but its block table holds ", max_blocks_per_seq,
                 " blocks");
    }
    const int32_t used_blocks = (seq_lens[i] + block_size - 1) / block_size;
    for (int32_t b = 0; b < used_blocks; ++b) {
      const int32_t block = block_tables[static_cast<size_t>(i) * max_blocks_per_seq + b];
      if (block < 0 || block >= num_blocks)
        return bad("block_tables[", i, "][", b, "] = ", block, " is outside [0, ", num_blocks, ")");
    }
    for (int32_t k = query_start_loc[i]; k < query_start_loc[i + 1]; ++k) {
      const int32_t expected = seq_lens[i] - q + (k - query_start_loc[i]);
      if (positions[k] != expected) return bad("positions[", k, "] = ", positions[k], ", expected ", expected);
      if (token_ids[k] < 0) return bad("token_ids[", k, "] is negative");
    }
  }
  for (int32_t i : logits_indices) {
    if (i < 0 || i >= t) return bad("logits index ", i, " is outside [0, ", t, ")");
  }
  for (int32_t k = 0; k < t; ++k) {
    if (slot_mapping[k] >= static_cast<int64_t>(num_blocks) * block_size) {
      return bad("slot_mapping[", k, "] = ", slot_mapping[k], " is outside the cache");
    }
  }
  return absl::OkStatus();
}

}  // namespace moeserve
