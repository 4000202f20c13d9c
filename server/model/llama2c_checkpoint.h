#ifndef MOESERVE_SERVER_MODEL_LLAMA2C_CHECKPOINT_H_
#define MOESERVE_SERVER_MODEL_LLAMA2C_CHECKPOINT_H_

#include <string>

#include "absl/status/status.h"

namespace moeserve {

// Converts a llama2.c legacy checkpoint (7 int32 header: dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size (negative = separate classifier), seq_len; then fp32 tensors) into a
// Hugging Face LlamaForCausalLM directory: config.json + model.safetensors (fp32). llama2.c rotates
// interleaved pairs while HF Llama rotates halves, so wq and wk rows are permuted per head.
// The tokenizer is converted separately (server/tokenizer/llama2c_vocab.h).
absl::Status ConvertLlama2cCheckpoint(const std::string& bin_path, const std::string& out_dir);

}  // namespace moeserve

#endif  // MOESERVE_SERVER_MODEL_LLAMA2C_CHECKPOINT_H_
