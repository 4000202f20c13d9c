// Prompts for a load test. Each BenchPrompt is either text (tokenized by the server) or token ids
// (exact input length), with the number of output tokens to ask for. Loading is deterministic for a
// given seed. Plain functions; the returned vectors are owned by the caller.
#ifndef MOESERVE_CLIENTS_BENCH_DATASET_H_
#define MOESERVE_CLIENTS_BENCH_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moeserve::bench {

struct BenchPrompt {
  // Exactly one of text / token_ids is used: token_ids when not empty.
  std::string text;
  std::vector<int32_t> token_ids;
  // Input tokens when known on the client (token_ids.size()); 0 for text.
  int input_tokens = 0;
  int output_tokens = 0;
};

struct DatasetOptions {
  // "random", "sharegpt:FILE", "jsonl:FILE" or "prefix-repetition".
  std::string spec = "random";
  int num_prompts = 100;
  // random: input length; prefix-repetition: the unique suffix after the shared prefix.
  int input_len = 128;
  int output_len = 128;
  // random / prefix-repetition: lengths are drawn uniformly from [len*(1-r), len*(1+r)].
  double range_ratio = 0.0;
  // prefix-repetition: `num_prefixes` shared prefixes of `prefix_len` tokens, used in turn.
  int prefix_len = 256;
  int num_prefixes = 4;
  // Token ids are drawn from [0, vocab_size) (random, prefix-repetition).
  int vocab_size = 0;
  uint64_t seed = 0;
};

// Builds `num_prompts` prompts. File datasets are sampled in file order and repeat when shorter
// than num_prompts. Errors: unknown spec, unreadable or malformed file, empty dataset, bad sizes.
absl::StatusOr<std::vector<BenchPrompt>> LoadDataset(const DatasetOptions& options);

// Whether the dataset builds token ids (and so needs the vocabulary size).
bool DatasetNeedsVocab(const std::string& spec);

}  // namespace moeserve::bench

#endif  // MOESERVE_CLIENTS_BENCH_DATASET_H_
