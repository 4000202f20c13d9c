#include "server/model/random_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "server/common/mapped_file.h"
#include "server/common/numeric.h"
#include "server/common/status_macros.h"
#include "server/model/architecture.h"
#include "server/model/config.h"
#include "server/model/safetensors.h"

namespace moeserve {
namespace {

// SplitMix64: small, fast, and good enough for weights nobody trains.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1).
  float Symmetric() { return static_cast<float>(static_cast<double>(Next() >> 11) * 0x1.0p-52 - 1.0); }

 private:
  uint64_t state_;
};

uint64_t NameSeed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a over the name, mixed with the seed
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

std::vector<float> RandomValues(const WeightSpec& spec, const RandomModelOptions& o) {
  int64_t n = 1;
  for (int64_t dim : spec.shape) n *= dim;
  std::vector<float> v(static_cast<size_t>(n));
  SplitMix64 rng(NameSeed(o.seed, spec.name));
  const float uniform_scale = o.init_std * std::sqrt(3.0f);  // uniform with the requested std
  switch (spec.kind) {
    case WeightSpec::Kind::kNorm:
      for (float& x : v) x = 1.0f + 0.05f * rng.Symmetric();
      break;
    case WeightSpec::Kind::kCorrectionBias:
    case WeightSpec::Kind::kBias:
      for (float& x : v) x = 0.01f * rng.Symmetric();
      break;
    default:
      for (float& x : v) x = uniform_scale * rng.Symmetric();
  }
  return v;
}

HostTensor Encode(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& v,
                  DType dtype) {
  HostTensor t{name, dtype, shape, {}};
  t.data.resize(v.size() * DTypeSize(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(t.data.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t bits = dtype == DType::kBF16 ? FloatToBf16(v[i]) : FloatToFp16(v[i]);
      std::memcpy(t.data.data() + 2 * i, &bits, 2);
    }
  }
  return t;
}

// Quantises a [rows, cols] matrix to fp8 e4m3 with one scale per block (amax / 448).
void EncodeFp8(const WeightSpec& spec, const std::vector<float>& v, int64_t br, int64_t bc,
               std::vector<HostTensor>* out) {
  const int64_t rows = spec.shape[0], cols = spec.shape[1];
  const int64_t sr = (rows + br - 1) / br, sc = (cols + bc - 1) / bc;
  std::vector<float> scale(static_cast<size_t>(sr * sc), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float& s = scale[(r / br) * sc + c / bc];
      s = std::max(s, std::fabs(v[r * cols + c]));
    }
  }
  for (float& s : scale) s = s > 0.0f ? s / 448.0f : 1.0f;
  HostTensor q{spec.name, DType::kF8E4M3, spec.shape, std::vector<uint8_t>(static_cast<size_t>(rows * cols))};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      q.data[r * cols + c] = FloatToFp8E4M3(v[r * cols + c] / scale[(r / br) * sc + c / bc]);
    }
  }
  out->push_back(std::move(q));
  out->push_back(Encode(spec.name + "_scale_inv", {sr, sc}, scale, DType::kF32));
}

}  // namespace

absl::Status WriteRandomModel(std::string_view config_json, const std::string& out_dir,
                              const RandomModelOptions& options) {
  if (options.dtype != DType::kF32 && options.dtype != DType::kBF16 && options.dtype != DType::kF16) {
    return absl::InvalidArgumentError("make-model: dtype must be f32, bf16 or f16");
  }
  const ArchitectureRegistry& architectures =
      options.architectures != nullptr ? *options.architectures : BuiltinArchitectures();
  ASSIGN_OR_RETURN(ModelConfig config, ParseModelConfig(config_json, "config", architectures));
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(out_dir, ": cannot create: ", ec.message()));
  RETURN_IF_ERROR(WriteStringToFile(out_dir + "/config.json", config_json));

  const std::vector<WeightSpec> specs = AllWeights(architectures.Find(config.architecture)->Tensors(config));
  nlohmann::json weight_map = nlohmann::json::object();
  std::vector<HostTensor> shard;
  int64_t shard_bytes = 0;
  int64_t total_bytes = 0;
  std::vector<std::pair<std::string, std::vector<std::string>>> written;  // shard file -> tensor names

  auto flush = [&]() -> absl::Status {
    if (shard.empty()) return absl::OkStatus();
    const std::string file = absl::StrFormat("model-%05d.safetensors", static_cast<int>(written.size()) + 1);
    RETURN_IF_ERROR(WriteSafetensors(out_dir + "/" + file, shard, {{"format", "pt"}}));
    std::vector<std::string> names;
    for (const HostTensor& t : shard) names.push_back(t.name);
    written.emplace_back(file, std::move(names));
    shard.clear();
    shard_bytes = 0;
    return absl::OkStatus();
  };

  for (const WeightSpec& spec : specs) {
    const std::vector<float> values = RandomValues(spec, options);
    const size_t before = shard.size();
    if (config.fp8_block_rows > 0 && spec.kind == WeightSpec::Kind::kLinear) {
      EncodeFp8(spec, values, config.fp8_block_rows, config.fp8_block_cols, &shard);
    } else {
      shard.push_back(Encode(spec.name, spec.shape, values, options.dtype));
    }
    for (size_t i = before; i < shard.size(); ++i) shard_bytes += static_cast<int64_t>(shard[i].data.size());
    if (shard_bytes >= options.max_shard_bytes) RETURN_IF_ERROR(flush());
  }
  RETURN_IF_ERROR(flush());

  // Rename to the hub's conventions: one file -> model.safetensors, several -> -0000k-of-0000n + index.
  const int n = static_cast<int>(written.size());
  for (int i = 0; i < n; ++i) {
    const std::string final_name =
        n == 1 ? "model.safetensors" : absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, n);
    std::filesystem::rename(out_dir + "/" + written[i].first, out_dir + "/" + final_name, ec);
    if (ec) return absl::InternalError(absl::StrCat("rename ", written[i].first, ": ", ec.message()));
    for (const std::string& name : written[i].second) weight_map[name] = final_name;
    total_bytes += static_cast<int64_t>(std::filesystem::file_size(out_dir + "/" + final_name));
  }
  if (n > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    RETURN_IF_ERROR(WriteStringToFile(out_dir + "/model.safetensors.index.json", index.dump(2)));
  }
  return absl::OkStatus();
}

}  // namespace moeserve
