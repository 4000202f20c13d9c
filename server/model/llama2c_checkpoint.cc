#include "server/model/llama2c_checkpoint.h"

#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/mapped_file.h"
#include "server/common/status_macros.h"
#include "server/model/architecture.h"
#include "server/model/safetensors.h"

namespace moeserve {
namespace {

struct Header {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

// Reads consecutive fp32 tensors from the body of a llama2.c file, bounds-checked.
class Reader {
 public:
  Reader(absl::Span<const uint8_t> bytes, size_t offset, std::string path)
      : bytes_(bytes), offset_(offset), path_(std::move(path)) {}

  absl::StatusOr<std::vector<float>> Take(const char* what, int64_t count) {
    const size_t need = static_cast<size_t>(count) * sizeof(float);
    if (count < 0 || offset_ + need > bytes_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": truncated while reading ", what, " (need ", need,
                                                     " bytes at offset ", offset_, ", file has ", bytes_.size(), ")"));
    }
    std::vector<float> v(static_cast<size_t>(count));
    std::memcpy(v.data(), bytes_.data() + offset_, need);
    offset_ += need;
    return v;
  }
  void Skip(int64_t floats) { offset_ += static_cast<size_t>(floats) * sizeof(float); }

 private:
  absl::Span<const uint8_t> bytes_;
  size_t offset_;
  std::string path_;
};

HostTensor F32Tensor(std::string name, std::vector<int64_t> shape, const float* data) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  HostTensor t{std::move(name), DType::kF32, std::move(shape), std::vector<uint8_t>(static_cast<size_t>(n) * 4)};
  std::memcpy(t.data.data(), data, t.data.size());
  return t;
}

// Interleaved-pair rows -> rotate-half rows, per head: new[s * hs/2 + i] = old[2i + s].
std::vector<float> PermuteForRotateHalf(const float* w, int64_t heads, int64_t head_size, int64_t cols) {
  std::vector<float> out(static_cast<size_t>(heads * head_size * cols));
  const int64_t half = head_size / 2;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t s = 0; s < 2; ++s) {
        const float* src = w + (h * head_size + 2 * i + s) * cols;
        std::memcpy(out.data() + (h * head_size + s * half + i) * cols, src, cols * sizeof(float));
      }
    }
  }
  return out;
}

}  // namespace

absl::Status ConvertLlama2cCheckpoint(const std::string& bin_path, const std::string& out_dir) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(bin_path));
  if (file->size() < sizeof(Header)) {
    return absl::InvalidArgumentError(absl::StrCat(bin_path, ": too small for a llama2.c header"));
  }
  Header h;
  std::memcpy(&h, file->bytes().data(), sizeof h);
  const bool shared_classifier = h.vocab_size > 0;
  const int64_t vocab = std::abs(static_cast<int64_t>(h.vocab_size));
  if (h.dim <= 0 || h.hidden_dim <= 0 || h.n_layers <= 0 || h.n_heads <= 0 || h.n_kv_heads <= 0 || vocab == 0 ||
      h.seq_len <= 0 || h.dim % h.n_heads != 0 || h.n_heads % h.n_kv_heads != 0 || (h.dim / h.n_heads) % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        bin_path, ": implausible llama2.c header (dim ", h.dim, ", hidden ", h.hidden_dim, ", layers ", h.n_layers,
        ", heads ", h.n_heads, ", kv_heads ", h.n_kv_heads, ", vocab ", h.vocab_size, ", seq_len ", h.seq_len, ")"));
  }
  const int64_t d = h.dim, hid = h.hidden_dim, layers = h.n_layers, hs = d / h.n_heads, kvd = h.n_kv_heads * hs;
  Reader r(file->bytes(), sizeof(Header), bin_path);
  ASSIGN_OR_RETURN(auto embed, r.Take("token_embedding", vocab * d));
  ASSIGN_OR_RETURN(auto rms_att, r.Take("rms_att_weight", layers * d));
  ASSIGN_OR_RETURN(auto wq, r.Take("wq", layers * d * d));
  ASSIGN_OR_RETURN(auto wk, r.Take("wk", layers * kvd * d));
  ASSIGN_OR_RETURN(auto wv, r.Take("wv", layers * kvd * d));
  ASSIGN_OR_RETURN(auto wo, r.Take("wo", layers * d * d));
  ASSIGN_OR_RETURN(auto rms_ffn, r.Take("rms_ffn_weight", layers * d));
  ASSIGN_OR_RETURN(auto w1, r.Take("w1", layers * hid * d));
  ASSIGN_OR_RETURN(auto w2, r.Take("w2", layers * d * hid));
  ASSIGN_OR_RETURN(auto w3, r.Take("w3", layers * hid * d));
  ASSIGN_OR_RETURN(auto rms_final, r.Take("rms_final_weight", d));
  r.Skip(static_cast<int64_t>(h.seq_len) * hs);  // freq_cis_real, freq_cis_imag (recomputed)
  std::vector<float> wcls;
  if (!shared_classifier) {
    ASSIGN_OR_RETURN(wcls, r.Take("wcls", vocab * d));
  }

  const nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", d},
      {"intermediate_size", hid},
      {"num_hidden_layers", layers},
      {"num_attention_heads", h.n_heads},
      {"num_key_value_heads", h.n_kv_heads},
      {"head_dim", hs},
      {"vocab_size", vocab},
      {"max_position_embeddings", h.seq_len},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", shared_classifier},
      {"attention_bias", false},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", "float32"},
  };
  // The tensor names are the Llama architecture's (arch/llama.cc).
  ASSIGN_OR_RETURN(const ModelConfig parsed, ParseModelConfig(config.dump(), bin_path));
  const DecoderTensors names = BuiltinArchitectures().Find(parsed.architecture)->Tensors(parsed);
  std::vector<HostTensor> tensors;
  auto add = [&](const WeightSpec& spec, const float* data) {
    tensors.push_back(F32Tensor(spec.name, spec.shape, data));
  };
  add(names.embed, embed.data());
  for (int64_t l = 0; l < layers; ++l) {
    const LayerTensors& layer = names.layers[l];
    const GqaTensors& a = std::get<GqaTensors>(layer.attention);
    const MlpTensors& m = std::get<MlpTensors>(layer.ffn);
    add(layer.input_norm, rms_att.data() + l * d);
    const auto q = PermuteForRotateHalf(wq.data() + l * d * d, h.n_heads, hs, d);
    const auto k = PermuteForRotateHalf(wk.data() + l * kvd * d, h.n_kv_heads, hs, d);
    add(a.q, q.data());
    add(a.k, k.data());
    add(a.v, wv.data() + l * kvd * d);
    add(a.o, wo.data() + l * d * d);
    add(layer.post_attention_norm, rms_ffn.data() + l * d);
    add(m.gate, w1.data() + l * hid * d);
    add(m.down, w2.data() + l * d * hid);
    add(m.up, w3.data() + l * hid * d);
  }
  add(names.final_norm, rms_final.data());
  if (names.lm_head) add(*names.lm_head, wcls.data());

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(out_dir, ": cannot create: ", ec.message()));
  RETURN_IF_ERROR(WriteStringToFile(out_dir + "/config.json", config.dump(2) + "\n"));
  return WriteSafetensors(out_dir + "/model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace moeserve
